"""`python -m model.prior` in a clone: the command `tritonsplat_inpaint.commands.prior`."""

from tritonsplat_inpaint.commands.prior import run

if __name__ == "__main__":
    raise SystemExit(run())
