"""`python -m model.release` in a clone: the command `tritonsplat_inpaint.commands.release`."""

from tritonsplat_inpaint.commands.release import run

if __name__ == "__main__":
    raise SystemExit(run())
