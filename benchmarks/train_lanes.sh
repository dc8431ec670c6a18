#!/usr/bin/env bash
# Whether two trainings at once, one thread each, get more images per second out of the machine than one
# training with every thread: the trainer's real loop (benchmarks/train_throughput.py) alone with all threads,
# then twice at once with OMP_NUM_THREADS=1; compare the sum of the two medians with the first.
#   bash benchmarks/train_lanes.sh ['<zoo-train overrides>']     (default: ssd_lite on BCCD, the CPU protocol)
set -euo pipefail
cd "$(dirname "$0")/.."
V=${1:-model=ssd_lite data=bccd trainer=cpu_bccd}
PY=${PY:-.venv/bin/python}
ARGS=(--rounds 2 --steps 20 --warmup 3 "$V")
echo "== one process, all threads"
"$PY" benchmarks/train_throughput.py "${ARGS[@]}" 2>/dev/null | tail -3
echo "== two processes at once, 1 thread each"
tmp=$(mktemp -d)
OMP_NUM_THREADS=1 "$PY" benchmarks/train_throughput.py "${ARGS[@]}" > "$tmp/1" 2>/dev/null &
OMP_NUM_THREADS=1 "$PY" benchmarks/train_throughput.py "${ARGS[@]}" > "$tmp/2" 2>/dev/null &
wait
tail -3 "$tmp/1"; tail -3 "$tmp/2"
