#!/usr/bin/env bash
# Trains the classifier with news_classifier and with its PyTorch twin on
# the same splits: seeds 0-2, pooling last, mean and max, everything else
# at the notebook's defaults. Logs go to OUT/<pool>-<seed>/{c,torch}.log and
# a summary table to stdout (docs/results.md quotes it).
#
#   examples/results.sh [DATA] [OUT] [THREADS]
set -euo pipefail
DATA=${1:-../shared/data/spanish-news-dev.csv.gz}
OUT=${2:-runs/results}
THREADS=${3:-2}
BIN=$(dirname "$0")/news_classifier
TWIN=$(dirname "$0")/torch_twin.py
for seed in 0 1 2; do
  for pool in last mean max; do
    d="$OUT/$pool-$seed"
    mkdir -p "$d"
    [ -s "$d/c.log" ] && grep -q "^test accuracy" "$d/c.log" || \
      "$BIN" train --data "$DATA" --seed "$seed" --pool "$pool" \
        --threads "$THREADS" --out "$d" > "$d/c.log" 2> "$d/c.err"
  done
done
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  for seed in 0 1 2; do
    for pool in last mean max; do
      d="$OUT/$pool-$seed"
      [ -s "$d/torch.log" ] && grep -q "^test accuracy" "$d/torch.log" || \
        /usr/bin/python3 "$TWIN" train --data "$DATA" --split "$d/split.json" \
          --seed "$seed" --pool "$pool" --threads "$THREADS" > "$d/torch.log"
    done
  done
fi
printf '%-6s %4s | %-28s | %-28s\n' pool seed "liblstm acc / macro-F1 / s/ep" \
  "PyTorch acc / macro-F1 / s/ep"
for pool in last mean max; do
  for seed in 0 1 2; do
    d="$OUT/$pool-$seed"
    acc=$(sed -n 's/^test accuracy \([0-9.]*\).*macro f1 \([0-9.]*\)$/\1 \2/p' "$d/c.log")
    sec=$(sed -n 's/^training:.*(\([0-9.]*\) s per epoch.*/\1/p' "$d/c.log")
    c=$(printf '%s %s' "$acc" "$sec" | awk '{printf "%.3f / %.3f / %.1f", $1, $2, $3}')
    t="-"
    [ -s "$d/torch.log" ] && grep -q "^test accuracy" "$d/torch.log" && \
      t=$(awk '/^test accuracy/ {gsub(",",""); printf "%.3f / %.3f / %.1f", $3, $6, $7}' "$d/torch.log")
    printf '%-6s %4s | %-28s | %-28s\n' "$pool" "$seed" "$c" "$t"
  done
done
