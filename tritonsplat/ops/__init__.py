"""torch.library custom ops with autograd: one per operation, each dispatching to exactly
one of `reference/` (torch) or `kernels/` (Triton)."""
