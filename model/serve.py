"""`python -m model.serve` in a clone: the command `tritonsplat_inpaint.commands.serve`."""

from tritonsplat_inpaint.commands.serve import run

if __name__ == "__main__":
    raise SystemExit(run())
