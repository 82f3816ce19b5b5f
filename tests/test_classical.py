"""Classical fills: the batched, threaded fill gives exactly the per-image results, in
order, and each method fills the hole from its surroundings."""

import torch

from tritonsplat_inpaint.classical import PREFILLS, fill_batch


def test_fill_batch_matches_one_image_at_a_time_in_order():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 24, 24, generator=g)
    masks = torch.zeros(3, 1, 24, 24)
    for i in range(3):
        masks[i, :, 4 + 3 * i : 12 + 3 * i, 6:14] = 1
    methods = ["telea", "biharmonic", "navier-stokes"]
    filled = fill_batch(methods, images, masks)
    assert len(filled) == 3
    for name, batch in zip(methods, filled, strict=True):
        assert batch.shape == images.shape
        for i in range(3):
            torch.testing.assert_close(batch[i], PREFILLS[name](images[i], masks[i]), atol=0, rtol=0)


def test_a_constant_image_is_filled_with_its_constant():
    images = torch.full((1, 3, 20, 20), 0.4)
    masks = torch.zeros(1, 1, 20, 20)
    masks[..., 5:15, 5:15] = 1
    for name, batch in zip(PREFILLS, fill_batch(list(PREFILLS), images * (1 - masks), masks), strict=True):
        hole = batch[masks.expand_as(batch) == 1]
        assert (hole - 0.4).abs().max() <= 3 / 255, name  # OpenCV works in 8 bits
