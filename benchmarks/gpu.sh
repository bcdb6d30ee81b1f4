#!/usr/bin/env bash
# Every GPU benchmark of this repository in one call, sized to finish in under 9 minutes on one H100
# (setup included), for the day a GPU is lent:
#
#     bash benchmarks/gpu.sh                # on the GPU machine, from anywhere in the checkout
#     bash benchmarks/gpu.sh --smoke        # CPU check of this script: every benchmark with --smoke
#
# Runs, each under its own `timeout`, one after another (the most wanted first):
#   se_overhead        benchmarks/se_overhead.py          SE-ResNet-50 / ResNet-50 training step, bf16 (P1, P5)
#   se_overhead_cifar  benchmarks/se_overhead.py --cifar  ResNet-20 plain / SE avg / SE max training step
#   cifar_throughput   benchmarks/cifar_throughput.py     CIFAR SE-ResNet-56 img/s, framework vs plain loop (P2)
#   table10_proxy      benchmarks/table10_proxy.py        with $CIFAR_ROOT (the CIFAR-10 JPEG tree):
#                      $T10_EPOCHS epochs (default 2, not the 30 of P3: the full proxy needs ~15 min);
#                      without it: --smoke (digits, 1 epoch), the sweep's pipeline on the GPU;
#                      $T10_JOBS jobs at once (default 6; 2 with --smoke)
#   se_overhead_compile benchmarks/se_overhead.py --compile   what time is left (torch.compile is slow to start)
#
# Writes into $OUT when set, else results/gpu_benchmarks/<date>: <name>.log (stdout and stderr),
# <name>.json (se_overhead's settings and every round), env.txt, nvidia-smi.txt and summary.txt.
# Creates .venv when missing (torch 2.14.1, torchvision 0.29.1, the package with its test extra); if
# that fails it says so and exits 2. Exits 1 if any benchmark failed or timed out, else 0.
# BUDGET_S (default 510) is the whole call's budget in seconds: every benchmark's timeout is cut to
# what is left of it, and one that would get under 30 s is skipped.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
START=$SECONDS
BUDGET_S=${BUDGET_S:-510}
SMOKE=()
if [[ ${1:-} == --smoke ]]; then
    SMOKE=(--smoke)
elif [[ $# -gt 0 ]]; then
    echo "usage: bash benchmarks/gpu.sh [--smoke]" >&2
    exit 2
fi
DIR=${OUT:-results/gpu_benchmarks/$(date +%Y-%m-%d_%H%M%S)}
mkdir -p "$DIR"
PY=.venv/bin/python

# --------------------------------------------------------------------------------------------- setup
if [[ ! -x $PY ]]; then
    echo "gpu.sh: no .venv, installing torch 2.14.1, torchvision 0.29.1 and the package (.[test])"
    if ! { python3 -m venv .venv &&
        .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 -e ".[test]"; } >"$DIR/install.log" 2>&1; then
        tail -n 20 "$DIR/install.log" >&2
        echo "gpu.sh: installing failed (no package registry reachable?), see $DIR/install.log; nothing was run" >&2
        rm -rf .venv
        exit 2
    fi
fi
SETUP_S=$((SECONDS - START))
if ! CUDA=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>"$DIR/torch_import.log"); then
    cat "$DIR/torch_import.log" >&2
    echo "gpu.sh: torch does not import from .venv" >&2
    exit 2
fi
if [[ $CUDA != 1 && ${#SMOKE[@]} -eq 0 ]]; then
    echo "gpu.sh: torch sees no CUDA device; on a CPU run 'bash benchmarks/gpu.sh --smoke'" >&2
    exit 3
fi
if command -v nvidia-smi >/dev/null; then
    GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)
    nvidia-smi >"$DIR/nvidia-smi.txt" 2>&1 || true
else
    GPU="none (nvidia-smi not found)"
fi
{
    echo "date: $(date -Is)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "gpu: $GPU"
    echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores"
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
} >"$DIR/env.txt" 2>&1 || true

# ------------------------------------------------------------------------------------------ benchmarks
NAMES=() RCS=() WALLS=()

# bench NAME CAP_S ARGS...: run ARGS with python under min(CAP_S, what is left of the budget)
bench() {
    local name=$1 cap=$2 left t0 rc
    shift 2
    left=$((BUDGET_S - (SECONDS - START)))
    ((cap > left)) && cap=$left
    NAMES+=("$name")
    if ((cap < 30)); then
        echo "== $name: skipped, ${left}s of the budget left" | tee "$DIR/$name.log"
        RCS+=(skipped) WALLS+=(0)
        return
    fi
    echo "== $name (timeout ${cap}s): python $*"
    t0=$SECONDS
    if timeout -k 10 "$cap" "$PY" "$@" >"$DIR/$name.log" 2>&1; then rc=0; else rc=$?; fi
    RCS+=("$rc") WALLS+=($((SECONDS - t0)))
    ((rc == 124 || rc == 137)) && echo "(timed out after ${cap}s)" >>"$DIR/$name.log"
    grep -E '^(P[0-9]|train ratio|baseline|framework|ratio|exit|per job)' "$DIR/$name.log" | sed 's/^/   /' || true
}

bench se_overhead 120 benchmarks/se_overhead.py --json "$DIR/se_overhead.json" "${SMOKE[@]}"
bench se_overhead_cifar 60 benchmarks/se_overhead.py --cifar --json "$DIR/se_overhead_cifar.json" "${SMOKE[@]}"
bench cifar_throughput 200 benchmarks/cifar_throughput.py "${SMOKE[@]}"
if [[ -n ${CIFAR_ROOT:-} && ${#SMOKE[@]} -eq 0 ]]; then
    bench table10_proxy 150 benchmarks/table10_proxy.py --root "$CIFAR_ROOT" --jobs "${T10_JOBS:-6}" \
        --epochs "${T10_EPOCHS:-2}"
else
    bench table10_proxy 120 benchmarks/table10_proxy.py --smoke --jobs "${T10_JOBS:-$((${#SMOKE[@]} ? 2 : 6))}"
fi
bench se_overhead_compile 200 benchmarks/se_overhead.py --compile --json "$DIR/se_overhead_compile.json" "${SMOKE[@]}"

# ----------------------------------------------------------------------------------------------- summary
FAILED=0
for rc in "${RCS[@]}"; do
    [[ $rc == 0 || $rc == skipped ]] || FAILED=1
done
{
    echo "gpu: $GPU"
    echo "setup: ${SETUP_S}s; total: $((SECONDS - START))s of a ${BUDGET_S}s budget; files: $DIR"
    printf '%-20s %-8s %s\n' benchmark exit wall_s
    for i in "${!NAMES[@]}"; do
        printf '%-20s %-8s %s\n' "${NAMES[$i]}" "${RCS[$i]}" "${WALLS[$i]}"
    done
    echo "(exit 124: timed out; skipped: no budget left)"
} | tee "$DIR/summary.txt"
exit "$FAILED"
