"""bench.dino_probe: the features a probe gives each crop in place of its own."""

import pytest
import torch

from bench.dino_probe import Recorded, Replayed, replacements


def test_each_crop_gets_the_next_photographs_feature_or_its_buckets_mean():
    buckets, photographs, per_image, dim = 2, 3, 2, 4
    # feature of (bucket b, photograph p, crop k) = [b, p, k, 0]
    f = torch.tensor([[b, p, k, 0.0] for b in range(buckets) for p in range(photographs) for k in range(per_image)])
    r = replacements(f, buckets, per_image)
    other = r["other-photograph"].view(buckets, photographs, per_image, dim)
    for b in range(buckets):
        for p in range(photographs):
            for k in range(per_image):
                assert other[b, p, k].tolist() == [b, (p + 1) % photographs, k, 0]
    mean = r["mean"].view(buckets, photographs * per_image, dim)
    assert torch.equal(mean[1], torch.tensor([[1.0, 1.0, 0.5, 0.0]]).expand(6, 4))


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
