"""`python -m model.evaluate` in a clone: the command `tritonsplat_inpaint.commands.evaluate`."""

from tritonsplat_inpaint.commands.evaluate import run

if __name__ == "__main__":
    raise SystemExit(run())
