"""The fills' starting mix: the weight grid is every blend that sums to one."""

import math

from tritonsplat_inpaint.commands.prior import weight_grid


def test_weight_grid_is_every_blend_summing_to_one():
    for n in (1, 2, 3):
        grid = weight_grid(n)
        assert len(grid) == math.comb(10 + n - 1, n - 1) == len(set(grid))
        assert all(abs(sum(w) - 1) < 1e-9 and min(w) >= 0 for w in grid)
    assert (0.8, 0.2) in weight_grid(2) and (1.0, 0.0, 0.0) in weight_grid(3)
