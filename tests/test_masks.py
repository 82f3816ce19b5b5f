import numpy as np
import pytest

from tritonsplat_inpaint.masks import BUCKETS, curriculum_ratio, evaluation_masks, random_mask


@pytest.mark.parametrize("target", [0.1, 0.3, 0.6])
def test_random_masks_reach_their_ratio_and_are_never_empty_or_full(target):
    rng = np.random.default_rng(0)
    ratios = [random_mask(64, 96, target, rng).mean() for _ in range(20)]
    assert all(0 < r < 1 for r in ratios)
    assert np.median(ratios) >= target and np.median(ratios) < target + 0.25


def test_evaluation_masks_land_in_their_buckets_and_are_fixed():
    a = evaluation_masks(64, 64, 5)
    b = evaluation_masks(64, 64, 5)
    for bucket, (lo, hi) in BUCKETS.items():
        ratios = a[bucket].mean(axis=(1, 2))
        assert ((ratios >= lo) & (ratios < hi)).all(), (bucket, ratios)
        assert np.array_equal(a[bucket], b[bucket])
        assert set(np.unique(a[bucket])) <= {0.0, 1.0}


def test_curriculum_grows():
    rng = np.random.default_rng(0)
    early = max(curriculum_ratio(0, 100, 0.2, 0.6, rng) for _ in range(200))
    late = max(curriculum_ratio(100, 100, 0.2, 0.6, rng) for _ in range(200))
    assert early <= 0.2 < late <= 0.6
