"""A roofline estimate of what the patch kernels should take on an H100 (SXM): an
estimate from operation counts and the data sheet, not a measurement.

Per pixel-Gaussian pair (counted from `tritonsplat/kernels/patches.py`):
  forward   ~12 FP32 ops for u, v, q, the scale, opacity, clamp and cut-off, 1 MUFU ex2,
            and the color accumulation tl.dot (fp32 "ieee": FMAs, C padded to 16 lanes:
            2 * 16 ops)
  backward  the forward's evaluation again, two dots (c.g and the color gradient,
            2 * 2 * 16 ops), ~15 ops of chain rule and 6 pixel reductions (~6 ops)
Bytes per patch: the K Gaussians' parameters in (2 + 3 + C + 1 floats), the canvas out
(C * S^2 floats); the backward also reads the canvas gradient and writes K parameter
gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

H100 = dict(
    name="H100 SXM",
    fp32_flops=67e12,  # non-tensor FP32, FMA counted as 2
    mufu_per_s=16 * 132 * 1.83e9,  # 16 ex2 per clock per SM, 132 SMs, 1.83 GHz boost
    bytes_per_s=3.35e12,  # HBM3
)


@dataclass
class Estimate:
    pass_: str
    pairs: int
    flops: float
    mufu: float
    bytes: float
    seconds_compute: float
    seconds_mufu: float
    seconds_memory: float

    @property
    def seconds(self) -> float:
        return max(self.seconds_compute, self.seconds_mufu, self.seconds_memory)

    @property
    def bound(self) -> str:
        t = {"FP32": self.seconds_compute, "MUFU": self.seconds_mufu, "memory": self.seconds_memory}
        return max(t, key=t.get)


def estimate(patches: int, k: int, canvas_pixels: int, channels: int, gpu=H100) -> list[Estimate]:
    pairs = patches * k * canvas_pixels
    c_pad = max(16, 1 << (channels - 1).bit_length())
    params = k * (2 + 3 + channels + 1) * 4
    canvas = channels * canvas_pixels * 4
    out = []
    for name, flops_per_pair, mufu, nbytes in (
        ("forward", 12 + 2 * c_pad, 1, params + canvas),
        ("backward", 12 + 4 * c_pad + 15 + 6, 1, 2 * params + canvas),
    ):
        flops = pairs * flops_per_pair
        byts = patches * nbytes
        out.append(
            Estimate(
                name, pairs, flops, pairs * mufu, byts,
                flops / gpu["fp32_flops"], pairs * mufu / gpu["mufu_per_s"], byts / gpu["bytes_per_s"],
            )
        )  # fmt: skip
    return out


def markdown(configs: dict[str, tuple[int, int, int, int]]) -> str:
    rows = [
        f"Estimate for {H100['name']} (not measured): FP32 {H100['fp32_flops'] / 1e12:.0f} TFLOP/s, "
        f"ex2 {H100['mufu_per_s'] / 1e12:.2f} T/s, HBM {H100['bytes_per_s'] / 1e12:.2f} TB/s.",
        "",
        "| configuration | pass | pairs | GFLOP | MB moved | bound | estimated time (us) |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for label, cfg in configs.items():
        for e in estimate(*cfg):
            rows.append(
                f"| {label} | {e.pass_} | {e.pairs / 1e6:.1f}M | {e.flops / 1e9:.2f} | {e.bytes / 1e6:.1f} "
                f"| {e.bound} | {e.seconds * 1e6:.0f} |"
            )
    return "\n".join(rows)
