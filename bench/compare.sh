#!/usr/bin/env bash
# Side by side, in one run: liblstm (bench/lstm_step), oneDNN's LSTM
# primitive (bench/dnnl_lstm) and PyTorch's nn.LSTM (bench/torch_lstm.py),
# alternating per batch size so that all three see the same machine, on the
# notebook's LSTM, every sequence of a batch T steps long (the peers
# compute every step of a padded batch; liblstm skips padding, which
# bench/lstm_step's default mixed lengths measure). Prints milliseconds
# per batch and the ratios
# (peer time / liblstm time: above 1 means liblstm is faster). With ROUNDS
# above 1 the whole alternation runs that many times and each
# implementation keeps its best median: the machine is shared, and a burst
# of other load can slow any one run. KERNELS (default: the library's
# choice) runs liblstm with each kernel set named, PRECISIONS (default fp32)
# with each precision: one liblstm column each, oneDNN compared with every
# one. CELL=gru compares GRUs instead (PyTorch's nn.GRU, oneDNN's
# linear-before-reset GRU).
#
#   [CELL=gru] [KERNELS="avx2 avx512"] [PRECISIONS="fp32 bf16-mixed"] \
#   bench/compare.sh [THREADS] [REPS] [BATCHES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
REPS=${2:-5}
BATCHES=${3:-4 12 32 64}
ROUNDS=${4:-1}
KERNELS=${KERNELS:-}
PRECISIONS=${PRECISIONS:-fp32}
CELL=${CELL:-lstm}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  for B in $BATCHES; do
    for k in ${KERNELS:-default}; do
      for p in $PRECISIONS; do
        env ${KERNELS:+LSTM_KERNELS=$k} bench/lstm_step --batch "$B" \
          --lengths full --reps "$REPS" --threads "$THREADS" --precision "$p" --cell "$CELL" --json \
          | sed 's/^{/{"impl":"liblstm",/' >> "$out"
      done
    done
    OMP_NUM_THREADS=$THREADS bench/dnnl_lstm --batch "$B" --reps "$REPS" --cell "$CELL" \
      >> "$out"
    # PyTorch's best setting: each thread count (inside the script), with
    # OpenBLAS's own threads on and off (they can fight with OpenMP's)
    for blas in "" 1; do
      env ${blas:+OPENBLAS_NUM_THREADS=$blas} /usr/bin/python3 \
        bench/torch_lstm.py --batch "$B" --reps "$REPS" --threads "$THREADS" \
        --cell "$CELL" >> "$out"
    done
  done
done
/usr/bin/python3 - "$out" "$THREADS" "$ROUNDS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ours = [r for r in rows if r["impl"] == "liblstm"]
variants = sorted({(r["kernels"], r["precision"]) for r in ours},
                  key=lambda v: (v[1] != "fp32", v))
def ms(impl, mode, b, v=None):  # the best of an implementation's settings
    return min(r["ms_median"] for r in rows if r["impl"].startswith(impl)
               and r["mode"] == mode and r["batch"] == b
               and (v is None or (r["kernels"], r["precision"]) == v))
peak = max(r.get("peak_gflops", 0) for r in ours)
names = {r["impl"].split()[0]: r["impl"] for r in rows}
label = {v: f"{v[0]}/{v[1]}" for v in variants}
print(f"# {ours[0]['cell']}: {ours[0]['cpu']}; ms per batch (best of {sys.argv[3]} round(s)), "
      f"T=512 I=256 H=128 L=2, {sys.argv[2]} threads; liblstm kernels/"
      f"precision: {', '.join(label.values())}; "
      f"{names.get('oneDNN', 'oneDNN')}, {names.get('PyTorch', 'PyTorch')}")
head = f"# {'mode':5} {'B':>3}"
for v in variants:
    head += f" {label[v]:>18}"
head += f" {'oneDNN':>9} {'PyTorch':>9}"
for v in variants:
    head += f" {'oneDNN/' + v[0] + '/' + v[1][:4]:>18}"
head += f" {'PyTorch/ours':>13} {'%peak':>6}"
print(head)
for mode in ("infer", "train"):
    for b in sorted({r["batch"] for r in rows}):
        d, t = ms("oneDNN", mode, b), ms("PyTorch", mode, b)
        mine = {v: ms("liblstm", mode, b, v) for v in variants}
        line = f"  {mode:5} {b:>3}"
        for v in variants:
            line += f" {mine[v]:18.1f}"
        line += f" {d:9.1f} {t:9.1f}"
        for v in variants:
            line += f" {d / mine[v]:18.2f}"
        best = min(mine.values())
        g = max(r["gflops"] for r in ours if r["mode"] == mode
                and r["batch"] == b and r["precision"] == "fp32") \
            if any(r["precision"] == "fp32" for r in ours) else 0
        line += f" {t / best:13.2f} {100 * g / peak:5.0f}%"
        print(line)
print(f"# FMA peak measured by lstm_step: {peak:.0f} GFLOP/s (best of its "
      f"runs); %peak: the fastest fp32 liblstm")
PY
