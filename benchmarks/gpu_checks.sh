#!/usr/bin/env bash
# The GPU checks docs/benchmarks.md records, in one go, for a GPU host: each step under its own time
# limit, its log in OUT_DIR, a one-line result per step at the end. Run from the repository root:
#
#     bash benchmarks/gpu_checks.sh OUT_DIR [STEP ...]
#
# Steps (default: all, in this order; at most 30 minutes, the sum of their limits):
#   adversarial  the GPU-only cheats get their verdicts (side streams, patched timers, ...)
#   warmpool     evaluations per minute with and without pre-started workers
#   fidelity     median and spread over 10 evaluations, ratio to do_bench, KernelBench comparison
#   paramevo     parameter-only evolution from five seeds
#   search       search efficiency; SEARCH_CACHE=benchmarks/data/search_cache_h200.json continues the
#                recorded measurements (an H200 only: a cache never mixes devices); its 540 s of
#                measuring may not reach the full budget: rerun into a new OUT_DIR with SEARCH_CACHE=OLD_OUT_DIR/search/search_cache.json
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_checks.sh OUT_DIR [STEP ...]}
shift
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(adversarial warmpool fidelity paramevo search)
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
summary=()

step() {  # name, seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name (at most ${limit} s)"
    timeout -s INT -k 20 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tail -n 3 "$out/$name.log"
    summary+=("$name: exit $rc$([ $rc -eq 124 ] && echo ' (time limit)')")
}

for name in "${steps[@]}"; do
    case $name in
        adversarial) step adversarial 120 python3 benchmarks/adversarial_gpu.py --out "$out/adversarial_gpu.json" ;;
        warmpool) step warmpool 300 python3 benchmarks/warm_pool.py --evals 12 --warm 2 --json "$out/warm_pool.json" ;;
        fidelity) step fidelity 480 python3 benchmarks/harness_fidelity.py --repeats 10 --kernelbench --kb-again 3 --warm 2 --out "$out" ;;
        paramevo) step paramevo 300 python3 benchmarks/param_evolution.py --max-evals 8 --repetitions 30 --out "$out/paramevo" ;;
        search) step search 600 python3 benchmarks/search_efficiency.py --budget 8 --seeds 2 --repetitions 30 \
            --gpu-seconds 540 ${SEARCH_CACHE:+--cache "$SEARCH_CACHE"} --out "$out/search" ;;
        *) echo "unknown step $name (adversarial, warmpool, fidelity, paramevo, search)" >&2; exit 2 ;;
    esac
done
printf '%s\n' "${summary[@]}"
