import os

import torch

# Without a GPU the Triton kernels run under the interpreter. It must be switched on
# before triton.jit decorates them, so before tritonsplat is imported by any test.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
