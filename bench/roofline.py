"""An issue-slot estimate of what the patch kernels should take on an H100 SXM, from the
static cost report (`python -m tritonsplat.aot`) and the data sheet: an estimate, not a
measurement, set beside the same estimate for a plain one-thread-per-pixel CUDA kernel.

Assumptions, each a place where the estimate can be wrong:
- Issue: an SM issues 4 warp-instructions per clock (one per sub-partition), 128 thread
  instructions; 132 SMs at 1.98 GHz (boost). PTX instructions stand in for SASS ones
  (the report's count errs high: it counts each load's `mov` initialisers, which ptxas
  drops, and ptxas folds negations into FFMA).
- The loop reaches that rate: enough warps (the report's warps per SM, >= 16) times the
  loop's independent pairs per thread (16 forward, 4 per pixel backward) hide the
  latency of the exp2 unit and the L1-resident parameter loads. Below that the time
  grows; nothing here models it.
- exp2 runs on the MUFU at 16 per clock per SM: one per pair.
- Idle slots count: pixel slots past the canvas (3 x 128 for 18 x 18 = 324, +18.5%)
  and Gaussian slots past K (3 x 128 rows for K = 324, +18.5%).
- Memory: parameters in once (6 + C floats per Gaussian, the row table written and read
  again), the canvas out once (forward) and the canvas gradient in (backward), at HBM3's
  3.35 TB/s. The estimate is the largest of issue, MUFU and memory time.
- The plain CUDA kernel (thread = pixel, a loop over the patch's Gaussians, parameters
  broadcast from shared memory): about 10 SASS instructions per pair forward (5 for u, v
  and q, the exp2 and its range step, 3 FFMA for C = 3) and 25 backward (the forward's
  again, C for c . g, 8 for the chain rule, C for the colors' gradient, each Gaussian's
  sums then reduced across the block: not counted), no idle slots.
"""

from __future__ import annotations

from dataclasses import dataclass

H100 = dict(
    name="H100 SXM",
    sms=132,
    clock=1.98e9,
    issue_per_sm=128,  # thread instructions per clock
    mufu_per_sm=16,
    bytes_per_s=3.35e12,
)
PLAIN_CUDA = {"forward": 10.0, "backward": 25.0}


@dataclass
class Estimate:
    pass_: str
    pairs: int
    instructions_per_pair: float
    idle: float  # fraction of slots beyond the pairs
    seconds_issue: float
    seconds_mufu: float
    seconds_memory: float
    seconds_plain_cuda: float

    @property
    def seconds(self) -> float:
        return max(self.seconds_issue, self.seconds_mufu, self.seconds_memory)

    @property
    def bound(self) -> str:
        t = {"issue": self.seconds_issue, "MUFU": self.seconds_mufu, "memory": self.seconds_memory}
        return max(t, key=t.get)


def _slots(n: int, block: int = 128) -> int:
    return -(-n // block) * block


def estimate(patches: int, k: int, canvas_pixels: int, channels: int, instructions: dict, gpu=H100) -> list[Estimate]:
    """`instructions`: {"forward": per pair, "backward": per pair} from the static report."""
    pairs = patches * k * canvas_pixels
    issue_rate = gpu["sms"] * gpu["issue_per_sm"] * gpu["clock"]
    params = patches * k * (6 + channels) * 4
    canvas = patches * channels * canvas_pixels * 4
    out = []
    for name, slots, nbytes in (
        ("forward", patches * k * _slots(canvas_pixels), 3 * params + canvas),
        ("backward", patches * _slots(k) * canvas_pixels, 3 * params + canvas + params),
    ):
        per_pair = instructions[name]
        out.append(
            Estimate(
                name, pairs, per_pair, slots / pairs - 1,
                slots * per_pair / issue_rate,
                pairs / (gpu["sms"] * gpu["mufu_per_sm"] * gpu["clock"]),
                nbytes / gpu["bytes_per_s"],
                pairs * PLAIN_CUDA[name] / issue_rate,
            )
        )  # fmt: skip
    return out


def instructions_from(reports, mode: str = "sum", channels: int = 3) -> dict:
    """Per-pair PTX instructions of the patch kernels on sm_90 from the static report."""
    key = (mode, channels, "sm_90")
    pick = {r.kernel: r.instructions_per_pair for r in reports if (r.mode, r.channels, r.arch) == key}
    return {"forward": pick["rasterize_patches_fwd"], "backward": pick["rasterize_patches_bwd"]}


def markdown(configs: dict[str, tuple[int, int, int, int]], reports) -> str:
    instructions = instructions_from(reports)
    rows = [
        f"Estimate for {H100['name']} (not measured; assumptions in bench/roofline.py): "
        f"{H100['sms']} SMs at {H100['clock'] / 1e9:.2f} GHz, {H100['issue_per_sm']} thread instructions and "
        f"{H100['mufu_per_sm']} exp2 per clock per SM, HBM {H100['bytes_per_s'] / 1e12:.2f} TB/s. Per pair: "
        f"forward {instructions['forward']:.1f}, backward {instructions['backward']:.1f} PTX instructions "
        f'("sum", C = 3, sm_90).',
        "",
        "| configuration | pass | pairs | instr. / pair | idle slots | bound | estimate (us) | plain CUDA (us) |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for label, cfg in configs.items():
        for e in estimate(*cfg, instructions):
            rows.append(
                f"| {label} | {e.pass_} | {e.pairs / 1e6:.1f}M | {e.instructions_per_pair:.1f} | {e.idle:.0%} "
                f"| {e.bound} | {e.seconds * 1e6:.0f} | {e.seconds_plain_cuda * 1e6:.0f} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    from tritonsplat.aot import compile_all

    print(markdown({"paper 1x256x256": (256, 324, 324, 3), "train 8x128x128": (512, 324, 324, 3)},
                   compile_all((3,), ("sum",), (90,))))  # fmt: skip
