"""`python -m model.train` in a clone: the command `tritonsplat_inpaint.commands.train`."""

from tritonsplat_inpaint.commands.train import run

if __name__ == "__main__":
    raise SystemExit(run())
