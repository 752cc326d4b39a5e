#!/usr/bin/python3
"""PyTorch's nn.LSTM (or nn.GRU, --cell gru) on the shapes of
bench/lstm_step, for bench/compare.sh.

infer: forward under no_grad; train: forward + backward of sum(out * r)
with every weight gradient and the input gradient, as lstm_step times it.
Tries each thread count up to --threads and keeps the best (PyTorch's best
setting), printing one JSON object per configuration like lstm_step --json.
Needs Debian's python3-torch: run with /usr/bin/python3.
"""
import argparse
import json
import statistics
import time

import torch


def time_it(fn, reps):
    fn()  # warm-up
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", default="4,12,32,64")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--input", type=int, default=256)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    a = p.parse_args()
    torch.manual_seed(0)
    cls = torch.nn.GRU if a.cell == "gru" else torch.nn.LSTM
    lstm = cls(a.input, a.hidden, a.layers, batch_first=True)
    for B in [int(b) for b in a.batch.split(",")]:
        x = torch.randn(B, a.seq, a.input, requires_grad=True)
        r = torch.randn(B, a.seq, a.hidden)

        def infer():
            with torch.no_grad():
                lstm(x)

        def train():
            lstm.zero_grad(set_to_none=False)
            x.grad = None
            out, _ = lstm(x)
            (out * r).sum().backward()

        for mode, fn in (("infer", infer), ("train", train)):
            best, best_t = None, 0
            for t in range(1, a.threads + 1):
                torch.set_num_threads(t)
                ms = time_it(fn, a.reps)
                if best is None or ms < best:
                    best, best_t = ms, t
            print(json.dumps({
                "cell": a.cell, "mode": mode, "batch": B, "seq": a.seq, "input": a.input,
                "hidden": a.hidden, "layers": a.layers, "threads": best_t,
                "ms_median": round(best, 3),
                "impl": f"PyTorch {torch.__version__}"}), flush=True)


if __name__ == "__main__":
    main()
