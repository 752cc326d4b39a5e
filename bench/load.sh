#!/usr/bin/env bash
# Threads under load: bench/lstm_step with one thread and with THREADS
# threads, alternating, while BUSY other processes (`yes`) keep CPUs busy.
# Prints milliseconds per batch and the ratio (THREADS threads / one
# thread: 1.10 or less means the extra threads cost at most 10%). Each
# setting keeps its best median over ROUNDS rounds; nothing is set in the
# environment.
#
#   bench/load.sh [THREADS] [REPS] [BATCHES] [ROUNDS] [BUSY]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
REPS=${2:-3}
BATCHES=${3:-1 4 32}
ROUNDS=${4:-3}
BUSY=${5:-1}
out=$(mktemp)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -f "$out"; }
trap cleanup EXIT
for _ in $(seq "$BUSY"); do
  yes > /dev/null &
  pids+=($!)
done
sleep 0.5
for round in $(seq "$ROUNDS"); do
  for B in $BATCHES; do
    for t in 1 "$THREADS"; do
      bench/lstm_step --batch "$B" --reps "$REPS" --threads "$t" --json \
        >> "$out"
    done
  done
done
python3 - "$out" "$THREADS" "$ROUNDS" "$BUSY" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
def ms(t, mode, b):
    return min(r["ms_median"] for r in rows
               if r["threads"] == t and r["mode"] == mode and r["batch"] == b)
print(f"# ms per batch (best of {sys.argv[3]} round(s)) beside {sys.argv[4]} "
      f"busy process(es), T=512 I=256 H=128 L=2; {rows[0].get('cpu', '')}, "
      f"{rows[0].get('kernels', '')} kernels")
print(f"# {'mode':5} {'B':>3} {'1 thread':>9} {f'{n} threads':>10} {'ratio':>6}")
for mode in ("infer", "train"):
    for b in sorted({r["batch"] for r in rows}):
        one, many = ms(1, mode, b), ms(n, mode, b)
        print(f"  {mode:5} {b:>3} {one:9.2f} {many:10.2f} {many / one:6.2f}")
PY
