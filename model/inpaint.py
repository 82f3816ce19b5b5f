"""`python -m model.inpaint` in a clone: the command `tritonsplat_inpaint.commands.inpaint`."""

from tritonsplat_inpaint.commands.inpaint import run

if __name__ == "__main__":
    raise SystemExit(run())
