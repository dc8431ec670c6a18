#!/usr/bin/env bash
# Every paper table committed under benchmarks/results/<table>_bccd/, run (or continued) one after another:
#   bash scripts/reproduce_bccd_tables.sh [table ...]      (default: all four, in the order below)
# Each table keeps its runs' figures in its archive folder as they finish (zoo-reproduce archive=), so a stop
# loses at most the run in progress: run the script again, on this machine or another, and it goes on from there.
# On 2 CPU cores a BCCD run takes 20 to 90 minutes; the four tables take days.
set -euo pipefail
cd "$(dirname "$0")/.."
ZOO_REPRODUCE=${ZOO_REPRODUCE:-.venv/bin/zoo-reproduce}
tables=("$@")
[ ${#tables[@]} -gt 0 ] || tables=(refinedet_table3 cornernet_table1 ssd_table2 zoo_speed_accuracy)
for table in "${tables[@]}"; do
  "$ZOO_REPRODUCE" table="$table" protocol=bccd seeds=2 archive="$PWD/benchmarks/results/${table}_bccd"
done
