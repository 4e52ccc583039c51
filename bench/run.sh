#!/usr/bin/env bash
# The whole benchmark in one command: set up (or reuse) the test environment, which also installs the
# official stack (gfpgan 1.3.8, basicsr, facexlib; requirements-official.txt), run every benchmark
# and write the tables into README.md's performance section.
#
#   bash bench/run.sh            full run on the CPU (about 22 minutes on 2 idle cores)
#   bash bench/run.sh --quick    the correctness checks only (restored crops, forward, ONNX), ~1 minute
#
# Environment: GFP_BENCH_DEVICE (cpu | cuda | cuda:N; default cpu), GFP_BENCH_REPEATS (default 3),
# GFP_BENCH_THREADS (torch CPU threads; default torch's choice), GFP_BENCH_PYTHON (use this
# interpreter as it is instead of setting up $GFP_VENV), GFP_VENV (see scripts/env.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${GFP_BENCH_PYTHON:-}" ]]; then
  py="$GFP_BENCH_PYTHON"
else
  bash "$root/scripts/env.sh" test
  py="${GFP_VENV:-$root/.venv}/bin/python"
fi
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${1:-}" == "--quick" ]]; then
  exec "$py" bench/quick_check.py
fi

device="${GFP_BENCH_DEVICE:-cpu}"
repeats="${GFP_BENCH_REPEATS:-3}"
common=(--device "$device" --repeats "$repeats" --warmup 1)
[[ -n "${GFP_BENCH_THREADS:-}" ]] && common+=(--threads "$GFP_BENCH_THREADS")
results="bench/results"
kind="${device%%:*}"
echo "machine load before: $(uptime)"
if [[ "$kind" == cuda ]]; then
  "$py" bench/bench_forward.py "${common[@]}" --batches 1 2 4 8 16 32 64 --memory --json "$results/forward_$kind.json"
  "$py" bench/bench_forward.py "${common[@]}" --batches 1 8 64 --impls ours-clean ours-clean-fp16 ours-clean-bf16 \
    official-clean --cuda-graphs --json "$results/forward_${kind}_graphs.json"
else
  "$py" bench/bench_forward.py "${common[@]}" --batches 1 4 --memory --json "$results/forward_$kind.json"
fi
"$py" bench/bench_pipeline.py "${common[@]}" --json "$results/pipeline_$kind.json"
[[ "$kind" == cpu ]] && "$py" bench/bench_detect.py "${common[@]}" --json "$results/detect_$kind.json"
[[ "$kind" == cpu ]] && "$py" bench/bench_offline.py --repeats "$repeats" --json "$results/offline_$kind.json"
[[ "$kind" == cpu ]] && "$py" bench/bench_parsing.py "${common[@]}" --json "$results/parsing_$kind.json"
[[ "$kind" == cpu ]] && "$py" bench/bench_scale.py --json "$results/scale_$kind.json"
echo "machine load after: $(uptime)"
"$py" bench/report.py --device "$kind" --readme README.md
