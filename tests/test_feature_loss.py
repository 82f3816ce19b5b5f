"""The feature loss on frozen EfficientNet-Lite0 stages: zero on the truth, larger for a
worse output, gradients to the output only, the backbone frozen and in eval mode."""

import torch

from tritonsplat_inpaint.losses import FeatureLoss


def test_feature_loss_orders_outputs_and_trains_nothing_of_its_own():
    torch.manual_seed(0)
    loss = FeatureLoss().train()  # asked to train, it stays frozen in eval mode
    assert not loss.training and not any(p.requires_grad for p in loss.parameters())
    truth = torch.rand(2, 3, 64, 64)
    near = (truth + 0.02 * torch.randn_like(truth)).clamp(0, 1).requires_grad_()
    far = (truth + 0.2 * torch.randn_like(truth)).clamp(0, 1)
    assert float(loss(truth, truth)) == 0.0
    value = loss(near, truth)
    assert 0 < float(value.detach()) < float(loss(far, truth))
    value.backward()
    assert near.grad is not None and near.grad.abs().sum() > 0
    assert [m.shape[1:] for m in loss.features(truth)] == [(24, 16, 16), (40, 8, 8), (112, 4, 4)]
