"""`python -m model.compare` in a clone: the command `tritonsplat_inpaint.commands.compare`."""

from tritonsplat_inpaint.commands.compare import run

if __name__ == "__main__":
    raise SystemExit(run())
