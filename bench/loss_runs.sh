#!/bin/sh
# Losses compared by short runs (docs/model.md, "Losses compared by short runs"): each arm
# starts from the same checkpoint's weights with a fresh optimiser, trains the same
# number of steps at a constant rate with one change of loss, is evaluated on the
# held-out photographs, and is differenced from the control arm crop by crop.
#
#   sh bench/loss_runs.sh INIT OUT [STEPS]    # e.g. training/lite0-more runs/losses 300
#
# INIT: a checkpoint or run folder; OUT: where the arms' run folders, evaluations and
# compare.md go. One thread each: the arms run one after another.
set -eu
init=$1 out=$2 steps=${3:-300}
arms="control feature0.1 feature1 gan0.1 structure0.3"
for arm in $arms; do
    case $arm in
        control) extra="" ;;
        feature0.1) extra="train.feature_loss=0.1" ;;  # EfficientNet-Lite0 feature maps (losses.FeatureLoss)
        feature1) extra="train.feature_loss=1.0" ;;
        gan0.1) extra="train.gan=0.1 train.gan_start=0" ;;  # the hinge PatchGAN from the first step
        structure0.3) extra="train.perceptual=0.3" ;;  # multi-scale SSIM and edges (losses.structure_loss)
    esac
    [ -f "$out/$arm/latest" ] && grep -q "step-$(printf %07d "$steps")" "$out/$arm/latest" || \
        python -m model.train --init "$init" --out "$out/$arm" --overwrite --steps "$steps" --no-progress --threads 1 \
            --set train.lr=1e-4 train.schedule=constant train.checkpoint_every=100000 train.curve_every=100000 \
                  train.curve_per_image=8 train.compact_moments=true $extra
    [ -f "$out/eval-$arm/results.json" ] || \
        python -m model.evaluate --ckpt "$out/$arm" --per-image 48 --detail 0 --no-full-size --threads 1 \
            --out "$out/eval-$arm"
done
# shellcheck disable=SC2046
python -m model.compare $(for arm in $arms; do echo "$out/eval-$arm"; done) --out "$out"
