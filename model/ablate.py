"""`python -m model.ablate` in a clone: the command `tritonsplat_inpaint.commands.ablate`."""

from tritonsplat_inpaint.commands.ablate import run

if __name__ == "__main__":
    raise SystemExit(run())
