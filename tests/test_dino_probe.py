"""bench.dino_probe: the features a probe gives each crop in place of its own."""

import pytest
import torch

from bench.dino_probe import Recorded, Replayed, bucket_means, other_photograph


def test_each_crop_gets_the_next_photographs_crop_under_its_own_mask_or_its_buckets_mean():
    photographs, per_image = 3, 2
    n = photographs * per_image
    images = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, 4, 4).clone() + 1
    masks = {"a": torch.zeros(n, 1, 4, 4), "b": torch.zeros(n, 1, 4, 4)}
    masks["b"][:, :, :2] = 1  # half of every crop a hole: the feature sees half the pixels

    def dino(x):  # the masked crop's mean value
        return x.mean((1, 2, 3))[:, None]

    got = other_photograph(dino, images, masks, per_image, batch=4).view(2, n)
    wanted = torch.tensor([(i + per_image) % n + 1.0 for i in range(n)])
    assert torch.equal(got[0], wanted) and torch.equal(got[1], wanted / 2)
    with pytest.raises(ValueError, match="at least 2 held-out photographs, got 1"):
        other_photograph(dino, images[:2], {"a": masks["a"][:2]}, per_image)
    f = torch.tensor([[b, p, 0.0] for b in range(2) for p in range(4)])
    assert torch.equal(bucket_means(f, 2).view(2, 4, 3)[1], torch.tensor([[1.0, 1.5, 0.0]]).expand(4, 3))


def test_a_replay_gives_rows_in_call_order_and_refuses_to_run_past_its_end():
    class Dino(torch.nn.Module):
        source = "test"

        def forward(self, x):
            return x.mean((1, 2, 3))[:, None].repeat(1, 2)

    rec = Recorded(Dino())
    a, b = torch.rand(3, 3, 4, 4), torch.rand(2, 3, 4, 4)
    rec(a), rec(b)
    features = torch.cat(rec.features)
    replay = Replayed(features.flip(0))
    assert torch.equal(replay(a), features.flip(0)[:3])
    assert torch.equal(replay(b), features.flip(0)[3:])
    with pytest.raises(RuntimeError, match="1 crops asked for after 5, 5 recorded"):
        replay(a[:1])
