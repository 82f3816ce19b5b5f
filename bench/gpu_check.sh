#!/usr/bin/env bash
# The one prepared check for a machine with a GPU: the whole test suite on CUDA (the
# kernel tests then run the compiled kernels), then the benchmarks and their report.
# For a machine with torch and triton but no network and possibly other versions than
# the pins: nothing is installed, the checkout is put on PYTHONPATH, and missing
# optional packages make their tests fail visibly instead of stopping the run.
#
#   bash bench/gpu_check.sh OUTDIR          # everything, logged under OUTDIR
#   bash bench/gpu_check.sh OUTDIR --quick  # a few cases of each stage (dry run)
#
# OUTDIR gets env.txt (GPU, driver, versions), tests.log and tests.xml, bench.log,
# bench.json, bench.md and bench.png, and aot.md (the static cost report).
set -uo pipefail
out=${1:?usage: bash bench/gpu_check.sh OUTDIR [--quick]}
quick=${2:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
start=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - start )) s)"; }

stage "environment"; : >"$out/env.txt"
{
    date -u
    nvidia-smi 2>&1 || echo "nvidia-smi: not found"
    $py - <<'PY'
import platform, torch, triton
print("python", platform.python_version(), "| torch", torch.__version__, "| triton", triton.__version__)
print("CUDA", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
PY
} >>"$out/env.txt" 2>&1
cat "$out/env.txt"

tests=(tests)
bench=(bench)
if [ "$quick" = "--quick" ]; then
    tests=(tests/test_api.py "tests/test_rasterize_patches.py::test_triton_matches_torch" "tests/test_rasterize.py::test_triton_matches_torch")
    bench=(bench/bench_rasterize_patches.py -k "paper and torch or resource")
fi

stage "tests"
$py -m pytest -p no:cacheprovider -q -rfEs "${tests[@]}" --junitxml="$out/tests.xml" 2>&1 | tee "$out/tests.log"
tests_rc=${PIPESTATUS[0]}

stage "benchmarks"
$py -m pytest -p no:cacheprovider -q --benchmark-only --benchmark-json="$out/bench.json" "${bench[@]}" 2>&1 \
    | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}
[ -s "$out/bench.json" ] && $py -m bench.report "$out/bench.json" --out "$out" >>"$out/bench.log" 2>&1
$py -m tritonsplat.aot --channels 3 --markdown "$out/aot.md" >/dev/null 2>&1

stage "done: tests exit $tests_rc, benchmarks exit $bench_rc"
exit $(( tests_rc || bench_rc ))
