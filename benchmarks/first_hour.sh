#!/usr/bin/env bash
# The first hour of a new user, timed as one would live it: a fresh clone of this checkout's commit, then the
# README's two commands, `make test` and `make train`, each timed end to end (install apart).
#
# Usage: bash benchmarks/first_hour.sh [RESULTS_FILE]     (default: benchmarks/results/first_hour.txt)
# Appends one line: date, CPU (model, cores, whether it has AVX-512 and bfloat16), commit, install seconds,
# `make test` seconds and its summary, `make train` seconds and its VOC07 mAP@0.5. Run it on an idle machine: it is
# the figure the README's first-run times come from. The clone and its venv go in a temporary folder, removed after.
# The install uses pip's cache as the machine has it (a first install on a new machine may take longer).
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
out=$(realpath -m -- "${1:-$repo/benchmarks/results/first_hour.txt}")  # absolute: the script moves into the clone
commit=$(git -C "$repo" rev-parse --short HEAD)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    echo "first_hour.sh: the checkout has uncommitted changes; the clone times $commit as committed" >&2
fi
work=$(mktemp -d /tmp/first_hour.XXXXXX)
trap 'rm -rf "$work"' EXIT

model=$(sed -n '/^model name/{s/^model name[[:space:]]*: //p;q}' /proc/cpuinfo)
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
isa=AVX2
case " $flags " in *" avx512f "*) isa=AVX-512 ;; esac
case " $flags " in *" avx512_bf16 "*|*" amx_bf16 "*) isa="$isa+bf16" ;; esac
machine="$model, $(nproc) cores, $isa"

git clone -q "$repo" "$work/zoo"
cd "$work/zoo"
git checkout -q "$commit"
# The shared data beside the checkout, as it lies beside a session's checkout (BCCD tests skip without it).
[ -e "$repo/../shared" ] && ln -s "$(cd "$repo/.." && pwd)/shared" "$work/shared"

start=$SECONDS
make install > "$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
install_s=$((SECONDS - start))

start=$SECONDS
make test > "$work/test.log" 2>&1 && test_ok=passed || test_ok=FAILED
test_s=$((SECONDS - start))
test_summary=$({ grep -E '[0-9]+ (passed|failed|errors?)' "$work/test.log" || echo 'no summary'; } | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')

start=$SECONDS
make train > "$work/train.log" 2>&1 || { tail -30 "$work/train.log"; exit 1; }
train_s=$((SECONDS - start))
map=$(sed -n 's/^voc07_map50 = //p' "$work/train.log" | tail -n 1)

line="$(date +%F) | $machine | code $commit | make install ${install_s} s | make test ${test_s} s ($test_ok: $test_summary) | make train ${train_s} s, voc07_map50 $map"
echo "$line"
echo "$line" >> "$out"
[ "$test_ok" = passed ] || { tail -40 "$work/test.log"; exit 1; }
