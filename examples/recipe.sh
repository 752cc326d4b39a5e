#!/usr/bin/env bash
# The recipe study of docs/results.md: trains each named configuration on
# the given seeds with early stopping on validation accuracy (best weights
# restored), and prints per configuration the mean validation accuracy
# (what the recipe is chosen by), and the mean, min and max test accuracy
# and mean macro-F1 (reported, never used to choose). Runs whose log is
# complete are not run again. Configurations are NAME=OPTIONS words.
#
#   examples/recipe.sh DATA OUT "SEEDS" NAME="OPTIONS" [NAME="OPTIONS" ...]
set -euo pipefail
DATA=$1 OUT=$2 SEEDS=$3
shift 3
BIN=$(dirname "$0")/news_classifier
printf '%-14s %5s %9s %22s %9s\n' config runs "val acc" "test acc (min-max)" \
  "macro-F1"
for conf in "$@"; do
  name=${conf%%=*} opts=${conf#*=}
  for seed in $SEEDS; do
    d="$OUT/$name-$seed"
    mkdir -p "$d"
    grep -qs "^test accuracy" "$d/log" ||
      "$BIN" train --data "$DATA" --seed "$seed" --threads 2 \
        --monitor val-acc --out "$d" $opts > "$d/log" 2> "$d/err"
  done
  for seed in $SEEDS; do
    d="$OUT/$name-$seed"
    val=$(sed -n 's/^restored the weights of epoch .* (val-acc \([0-9.]*\))/\1/p' "$d/log")
    [ -n "$val" ] || val=$(awk '/^epoch / {v = $12} END {print v}' "$d/log")
    sed -n "s/^test accuracy \([0-9.]*\).*macro f1 \([0-9.]*\)$/$val \1 \2/p" "$d/log"
  done | awk -v n="$name" '{v += $1; t += $2; f += $3; k++;
      if (k == 1 || $2 < lo) lo = $2; if (k == 1 || $2 > hi) hi = $2}
      END {printf "%-14s %5d %9.3f %10.3f (%.3f-%.3f) %9.3f\n", n, k,
           v / k, t / k, lo, hi, f / k}'
done
