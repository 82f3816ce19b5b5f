"""Classical inpainting on [3, H, W] tensors in [0, 1] with [1, H, W] masks (1 = hole):
the evaluation baselines, and the coarse fills the CPU preset feeds its encoder."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] -> [H, W, C] uint8, rounded as an 8-bit image file stores it."""
    return (image.detach().permute(1, 2, 0).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)


def _cv2(image: torch.Tensor, mask: torch.Tensor, flag: int, radius: int = 3) -> torch.Tensor:
    out = cv2.inpaint(to_uint8(image), (mask[0].detach().cpu().numpy() > 0.5).astype(np.uint8), radius, flag)
    return torch.from_numpy(out.astype(np.float32) / 255).permute(2, 0, 1).to(image.device)


def telea(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """OpenCV's fast marching method (Telea 2004)."""
    return _cv2(image, mask, cv2.INPAINT_TELEA)


def navier_stokes(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """OpenCV's Navier-Stokes method (Bertalmio et al. 2001)."""
    return _cv2(image, mask, cv2.INPAINT_NS)


def fsr(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """OpenCV's frequency-selective reconstruction (Seiler et al. 2015, `cv2.xphoto`,
    `INPAINT_FSR_FAST`): fits a sparse sum of DCT basis functions around each hole, so it
    continues texture and straight edges where the diffusion methods blur. Needs OpenCV's
    contrib build (`opencv-contrib-python-headless`)."""
    if not hasattr(cv2, "xphoto"):
        raise RuntimeError(
            "fsr: cv2.xphoto is missing: OpenCV's contrib build is needed (pip uninstall opencv-python-headless "
            "opencv-contrib-python-headless && pip install opencv-contrib-python-headless)"
        )
    known = (mask[0].detach().cpu().numpy() <= 0.5).astype(np.uint8)  # xphoto: non-zero = known
    src = np.ascontiguousarray(to_uint8(image))
    out = np.zeros_like(src)  # C-contiguous: OpenCV writes into it in place
    cv2.xphoto.inpaint(src, known, out, cv2.xphoto.INPAINT_FSR_FAST)
    return torch.from_numpy(out.astype(np.float32) / 255).permute(2, 0, 1).to(image.device)


def biharmonic(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """scikit-image's biharmonic inpainting."""
    from skimage.restoration import inpaint_biharmonic

    arr = image.detach().permute(1, 2, 0).cpu().numpy()
    out = inpaint_biharmonic(arr, mask[0].detach().cpu().numpy() > 0.5, channel_axis=-1)
    return torch.from_numpy(out.astype(np.float32)).permute(2, 0, 1).clamp(0, 1).to(image.device)


def fill_batch(methods: list[str], images: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
    """[B, 3, H, W], [B, 1, H, W] -> for each name in `methods` (keys of PREFILLS) every
    image filled that way, [B, 3, H, W], no gradient. The (method, image) pairs run on a
    small thread pool: OpenCV and SciPy's sparse solver release the GIL, so the fills
    use the cores that a single-threaded call would leave idle."""
    jobs = [(PREFILLS[name], image, mask) for name in methods for image, mask in zip(images, masks, strict=True)]
    filled = list(_pool().map(lambda job: job[0](job[1], job[2]), jobs))
    b = images.shape[0]
    return [torch.stack(filled[i * b : (i + 1) * b]) for i in range(len(methods))]


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Threads: $TRITONSPLAT_FILL_THREADS, else one per core up to 4 (a GPU machine's 16
    cores feed its GPU with more: bench/gpu_train.sh)."""
    threads = int(os.environ.get("TRITONSPLAT_FILL_THREADS") or 0) or min(4, os.cpu_count() or 1)
    return ThreadPoolExecutor(max(1, threads), thread_name_prefix="fill")


# the coarse fills a model can be given as a prior (ModelConfig.prefill)
PREFILLS = {"telea": telea, "navier-stokes": navier_stokes, "biharmonic": biharmonic, "fsr": fsr}
