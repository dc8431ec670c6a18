#!/usr/bin/env bash
# A table's runs still to train, trained LANES at a time (default 2) with one share of the cores each, each run
# archived as soon as it finishes; then the table is written (each row timed with nothing else running):
#   bash scripts/train_table_in_lanes.sh <table> [zoo-reproduce arguments ...]
#   e.g. bash scripts/train_table_in_lanes.sh zoo_speed_accuracy        (protocol=bccd seeds=2 by default)
# On 2 cores two one-thread runs at once train 1.17x the images per second of one two-thread run
# (benchmarks/results/train_lanes_bccd.txt). Stopped, it loses nothing finished: run it again and each
# interrupted run continues from its last checkpoint.
# Environment: LANES; ZOO_PYTHON (a python that imports zoo, default .venv/bin/python); ZOO_CODE (the folder
# whose zoo/ and conf/ train the runs, default this checkout: a table pinned to one commit runs from a copy of
# it, with the data where its configs name it); RUNS (default runs/tables/<table>-<protocol>);
# ARCHIVE (default benchmarks/results/<table>_<protocol>).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 <table> [zoo-reproduce arguments ...]" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
table=$1; shift
args=("$@")
protocol="" seeds=""
for a in "${args[@]}"; do
  case $a in protocol=*) protocol=${a#protocol=} ;; seeds=*) seeds=${a#seeds=} ;; esac
done
[ -n "$protocol" ] || { protocol=bccd; args+=(protocol=bccd); }
[ -n "$seeds" ] || args+=(seeds=2)
LANES=${LANES:-2}
PY=$(realpath -s "${ZOO_PYTHON:-$repo/.venv/bin/python}")  # -s: a venv's python is a link
CODE=$(realpath "${ZOO_CODE:-$repo}")
RUNS=$(realpath -m "${RUNS:-$repo/runs/tables/$table-$protocol}")
ARCHIVE=$(realpath -m "${ARCHIVE:-$repo/benchmarks/results/${table}_$protocol}")
mkdir -p "$RUNS" "$ARCHIVE"
threads=$(( $(nproc) / LANES > 0 ? $(nproc) / LANES : 1 ))
reproduce=("$PY" -m zoo.cli.reproduce "table=$table" "${args[@]}" "out=$RUNS" "archive=$ARCHIVE")

in_code() { (cd "$CODE" && PYTHONPATH="$CODE" "$@"); }
# Writes launch_commands.sh (the runs still to train) and archives every run finished so far; lanes share a lock.
archive_finished() {
  in_code flock "$RUNS/.archive.lock" "${reproduce[@]}" launch=commands > "$RUNS/launch.out" 2>&1 \
    || { cat "$RUNS/launch.out" >&2; return 1; }
}

archive_finished
mapfile -t runs < <(grep '^zoo-train ' "$RUNS/launch_commands.sh" || true)
echo "$table ($protocol): ${#runs[@]} run(s) to train, $LANES at a time with $threads thread(s) each; logs beside each run"
lane() {  # the lane's share of the runs: every LANES-th from its index
  for (( i = $1; i < ${#runs[@]}; i += LANES )); do
    eval "words=(${runs[i]})"  # the line as zoo-reproduce quoted it
    for word in "${words[@]}"; do [[ $word == hydra.run.dir=* ]] && dir=${word#hydra.run.dir=}; done
    mkdir -p "$(dirname "$dir")"
    echo "$(date -u +%FT%TZ) lane $1: ${runs[i]}"
    if ! in_code env OMP_NUM_THREADS="$threads" "$PY" -m zoo.cli.train "${words[@]:1}" > "$dir.log" 2>&1; then
      echo "$(date -u +%FT%TZ) lane $1: failed, see $dir.log" >&2
      return 1
    fi
    archive_finished
  done
}
pids=()
for (( lane_index = 0; lane_index < LANES; lane_index++ )); do lane "$lane_index" & pids+=($!); done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || { echo "a run failed: the table is not written (run the script again to retry it)" >&2; exit 1; }
in_code "${reproduce[@]}"
