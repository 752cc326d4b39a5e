#!/usr/bin/env bash
# Side by side, in one run: liblstm (bench/lstm_step), oneDNN's LSTM
# primitive (bench/dnnl_lstm) and PyTorch's nn.LSTM (bench/torch_lstm.py),
# alternating per batch size so that all three see the same machine, on the
# notebook's LSTM. Prints milliseconds per batch and the ratios
# (peer time / liblstm time: above 1 means liblstm is faster). With ROUNDS
# above 1 the whole alternation runs that many times and each
# implementation keeps its best median: the machine is shared, and a burst
# of other load can slow any one run.
#
#   bench/compare.sh [THREADS] [REPS] [BATCHES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
REPS=${2:-5}
BATCHES=${3:-4 12 32 64}
ROUNDS=${4:-1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  for B in $BATCHES; do
    bench/lstm_step --batch "$B" --reps "$REPS" --threads "$THREADS" --json \
      | sed 's/^{/{"impl":"liblstm",/' >> "$out"
    OMP_NUM_THREADS=$THREADS bench/dnnl_lstm --batch "$B" --reps "$REPS" >> "$out"
    # PyTorch's best setting: each thread count (inside the script), with
    # OpenBLAS's own threads on and off (they can fight with OpenMP's)
    for blas in "" 1; do
      env ${blas:+OPENBLAS_NUM_THREADS=$blas} /usr/bin/python3 \
        bench/torch_lstm.py --batch "$B" --reps "$REPS" --threads "$THREADS" \
        >> "$out"
    done
  done
done
/usr/bin/python3 - "$out" "$THREADS" "$ROUNDS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def ms(impl, mode, b):  # the best of an implementation's settings
    return min(r["ms_median"] for r in rows if r["impl"].startswith(impl)
               and r["mode"] == mode and r["batch"] == b)
peak = max(r.get("peak_gflops", 0) for r in rows)
names = {r["impl"].split()[0]: r["impl"] for r in rows}
print(f"# ms per batch (best of {sys.argv[3]} round(s)), T=512 I=256 H=128 "
      f"L=2, fp32, {sys.argv[2]} threads; "
      f"{names.get('oneDNN', 'oneDNN')}, {names.get('PyTorch', 'PyTorch')}")
print(f"# {'mode':5} {'B':>3} {'liblstm':>9} {'oneDNN':>9} {'PyTorch':>9}"
      f" {'oneDNN/liblstm':>15} {'PyTorch/liblstm':>16} {'liblstm %peak':>14}")
for mode in ("infer", "train"):
    for b in sorted({r["batch"] for r in rows}):
        l, d, t = ms("liblstm", mode, b), ms("oneDNN", mode, b), ms("PyTorch", mode, b)
        g = max(r["gflops"] for r in rows if r["impl"] == "liblstm"
                and r["mode"] == mode and r["batch"] == b)
        print(f"  {mode:5} {b:>3} {l:9.1f} {d:9.1f} {t:9.1f} {d / l:15.2f}"
              f" {t / l:16.2f} {100 * g / peak:13.0f}%")
print(f"# FMA peak measured by lstm_step: {peak:.0f} GFLOP/s (best of its runs)")
PY
