"""An issue-slot estimate of what the patch kernels should take on an H100 SXM, from the
static cost report (`python -m tritonsplat.aot`) and the data sheet: an estimate, not a
measurement, set beside the same estimate for a plain one-thread-per-pixel CUDA kernel.

Assumptions, each a place where the estimate can be wrong:
- Issue: an SM issues 4 warp-instructions per clock (one per sub-partition), 128 thread
  instructions; 132 SMs at 1.98 GHz (boost). PTX instructions stand in for SASS ones
  (the report's count errs high: it counts each load's `mov` initialisers, which ptxas
  drops, and ptxas folds negations into FFMA).
- Occupancy: a scheduler issues every clock only while it has an instruction whose
  inputs are ready. With W resident warps per SM (the report's figure), each of the 4
  schedulers holds W / 4 warps, each with `pairs_per_iteration` independent chains (16
  forward, 4 backward); at a dependent-issue latency of 8 clocks (FFMA about 4, the exp2
  unit and L1 hits longer, mixed) the issue rate is scaled by
  min(1, (W / 4) x chains / 8). For the kernels here that is 1; for the old forward
  (8 warps, barriers between its stages) it is not what limited it, and barriers are not
  modelled.
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
    issue_efficiency: float  # from the occupancy, <= 1
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


DEPENDENT_ISSUE_CLOCKS = 8


def issue_efficiency(warps_per_sm: int, chains: int) -> float:
    return min(1.0, warps_per_sm / 4 * chains / DEPENDENT_ISSUE_CLOCKS)


def estimate(patches: int, k: int, canvas_pixels: int, channels: int, instructions: dict, gpu=H100) -> list[Estimate]:
    """`instructions`: {"forward": (per pair, warps per SM, chains per thread), "backward":
    (...)} from the static report."""
    pairs = patches * k * canvas_pixels
    issue_rate = gpu["sms"] * gpu["issue_per_sm"] * gpu["clock"]
    params = patches * k * (6 + channels) * 4
    canvas = patches * channels * canvas_pixels * 4
    out = []
    for name, slots, nbytes in (
        ("forward", patches * k * _slots(canvas_pixels), 3 * params + canvas),
        ("backward", patches * _slots(k) * canvas_pixels, 3 * params + canvas + params),
    ):
        per_pair, warps, chains = instructions[name]
        eff = issue_efficiency(warps, chains)
        out.append(
            Estimate(
                name, pairs, per_pair, slots / pairs - 1, eff,
                slots * per_pair / (issue_rate * eff),
                pairs / (gpu["sms"] * gpu["mufu_per_sm"] * gpu["clock"]),
                nbytes / gpu["bytes_per_s"],
                pairs * PLAIN_CUDA[name] / issue_rate,
            )
        )  # fmt: skip
    return out


def instructions_from(reports, mode: str = "sum", channels: int = 3) -> dict:
    """Per-pair PTX instructions of the patch kernels on sm_90 from the static report."""
    key = (mode, channels, "sm_90")
    pick = {
        r.kernel: (r.instructions_per_pair, r.warps_per_sm, r.pairs_per_iteration)
        for r in reports
        if (r.mode, r.channels, r.arch) == key
    }
    return {"forward": pick["rasterize_patches_fwd"], "backward": pick["rasterize_patches_bwd"]}


def markdown(configs: dict[str, tuple[int, int, int, int]], reports) -> str:
    instructions = instructions_from(reports)
    rows = [
        f"Estimate for {H100['name']} (not measured; assumptions in bench/roofline.py): "
        f"{H100['sms']} SMs at {H100['clock'] / 1e9:.2f} GHz, {H100['issue_per_sm']} thread instructions and "
        f"{H100['mufu_per_sm']} exp2 per clock per SM, HBM {H100['bytes_per_s'] / 1e12:.2f} TB/s. Per pair: "
        f"forward {instructions['forward'][0]:.1f}, backward {instructions['backward'][0]:.1f} PTX instructions "
        f'("sum", C = 3, sm_90).',
        "",
        "| configuration | pass | pairs | instr. / pair | idle slots | issue efficiency | bound | estimate (us) "
        "| plain CUDA (us) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for label, cfg in configs.items():
        for e in estimate(*cfg, instructions):
            rows.append(
                f"| {label} | {e.pass_} | {e.pairs / 1e6:.1f}M | {e.instructions_per_pair:.1f} | {e.idle:.0%} "
                f"| {e.issue_efficiency:.2f} | {e.bound} | {e.seconds * 1e6:.0f} | {e.seconds_plain_cuda * 1e6:.0f} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    from tritonsplat.aot import compile_all

    print(markdown({"paper 1x256x256": (256, 324, 324, 3), "train 8x128x128": (512, 324, 324, 3)},
                   compile_all((3,), ("sum",), (90,))))  # fmt: skip
