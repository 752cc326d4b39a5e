#!/usr/bin/env bash
# make bench-mpi: one training epoch of news_classifier (the notebook's
# model, batch 4) on synthetic data of real-size texts (bench/synth_data.py,
# ROWS rows, 80% of them trained on), as 1 process x 2 threads and as
# 2 processes x 1 thread under mpirun, alternating, ROUNDS times; prints
# each run's seconds of training steps and, for 2 processes, the seconds
# spent in the gradient sums.
#
#   bench/mpi_epoch.sh [ROWS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-2000}
ROUNDS=${2:-1}
BIN=build/mpi/examples/news_classifier
data=build/mpi/synth-$ROWS.csv
[ -s "$data" ] || python3 bench/synth_data.py data/spanish-news-dev.csv.gz \
    "$data" --rows "$ROWS"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
opts="--data $data --epochs 1 --monitor train-loss --seed 0"
echo "# $(lscpu | sed -n 's/^Model name: *//p'); $ROWS rows ($((ROWS * 8 / 10)) trained on), batch 4, one epoch"
printf '# %-22s %10s %12s %16s\n' run "steps s" "sums s" "sum ms/step"
for round in $(seq "$ROUNDS"); do
  for np in 1 2; do
    rm -rf "$out/run"
    if [ "$np" = 1 ]; then
      "$BIN" train $opts --threads 2 --out "$out/run" > "$out/log" 2>&1
    else
      mpirun --oversubscribe -np 2 "$BIN" train $opts --threads 1 \
        --out "$out/run" > "$out/log" 2>&1
    fi
    steps=$(sed -n 's/^training: .* s per epoch, \([0-9.]*\) s of them training steps.*/\1/p' "$out/log")
    sums=$(sed -n 's/^gradient sums across [0-9]* processes: \([0-9.]*\) s per epoch, \([0-9.]*\) ms.*/\1 \2/p' "$out/log")
    [ "$np" = 1 ] && label="1 process x 2 threads" || label="2 processes x 1 thread"
    printf '  %-22s %10s %12s %16s\n' "$label" "${steps:-?}" \
      "$(echo "${sums:-- -}" | cut -d' ' -f1)" "$(echo "${sums:-- -}" | cut -d' ' -f2)"
  done
done
grep -m1 "^model:" "$out/log" | sed 's/^/# /'
