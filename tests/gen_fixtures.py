#!/usr/bin/python3
"""Writes the golden fixtures of tests/check_golden.c with PyTorch.

Run with Debian's python3-torch:  /usr/bin/python3 tests/gen_fixtures.py
The outputs in tests/fixtures/ are committed, so `make test` never needs
Python. Weights are drawn in float32 (so the C side gets them exactly) and
everything else is computed in float64: the fixtures hold the exact answer
for those inputs, and the C tolerances measure liblstm's float32 error only.

File format (little-endian): b"LSTMFIX1", u32 count, then per tensor:
u32 name length, name bytes, u32 ndim, u32 dims[ndim], f32 data.
Integer tensors (ids, lengths, labels) are stored as float32 too.
"""
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def save(path, tensors):
    with open(path + ".tmp", "wb") as f:
        f.write(b"LSTMFIX1")
        f.write(struct.pack("<I", len(tensors)))
        for name, t in tensors.items():
            t = t.detach().to(torch.float32).contiguous()
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<I", t.dim()))
            f.write(struct.pack("<%dI" % t.dim(), *t.shape))
            f.write(t.numpy().astype("<f4").tobytes())
    os.replace(path + ".tmp", path)
    print("wrote", path, len(tensors), "tensors")


def run_lstm(lstm, x, lengths, h0, c0):
    """nn.LSTM or nn.GRU over packed sequences; cn is None for a GRU."""
    T = x.shape[1]
    packed = pack_padded_sequence(x, lengths, batch_first=True,
                                  enforce_sorted=False)
    if isinstance(lstm, nn.GRU):
        out, hn = lstm(packed, h0)
        cn = None
    else:
        out, (hn, cn) = lstm(packed, None if h0 is None else (h0, c0))
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    return out, hn, cn


def lstm_case(name, B, T, I, H, L, lengths, with_state, seed,
              bidirectional=False, gru=False):
    """nn.LSTM, or nn.GRU (no cell state: no c0, cn, dcn, dc0)."""
    torch.manual_seed(seed)
    D = 2 if bidirectional else 1
    lstm = (nn.GRU if gru else nn.LSTM)(I, H, L, batch_first=True,  # float32
                                        bidirectional=bidirectional)
    lstm = lstm.double()
    x = torch.randn(B, T, I, dtype=torch.float64).float().double()
    x.requires_grad_(True)
    h0 = c0 = None
    if with_state:
        h0 = torch.randn(L * D, B, H).double().requires_grad_(True)
        c0 = torch.randn(L * D, B, H).double().requires_grad_(not gru)
    lens = torch.tensor(lengths)
    out, hn, cn = run_lstm(lstm, x, lens, h0, c0)
    dout = torch.randn(B, T, D * H).double()
    dhn = torch.randn(L * D, B, H).double()
    dcn = torch.randn(L * D, B, H).double()
    loss = (out * dout).sum() + (hn * dhn).sum()
    if not gru:
        loss = loss + (cn * dcn).sum()
    loss.backward()
    t = {"x": x, "len": lens.double(), "out": out, "hn": hn, "cn": cn,
         "dout": dout, "dhn": dhn, "dcn": dcn, "dx": x.grad}
    if with_state:
        t.update({"h0": h0, "c0": c0, "dh0": h0.grad, "dc0": c0.grad})
    if gru:  # no cell state
        for n in ("cn", "dcn", "c0", "dc0"):
            t.pop(n, None)
    for n, p in lstm.named_parameters():
        t["lstm." + n] = p
        t["grad.lstm." + n] = p.grad
    save(os.path.join(OUT, name + ".bin"), t)


class LSTMBlock(nn.Module):
    """The notebook's LSTMBlock, made right: packed by true lengths."""

    def __init__(self, V, E, H, L, pool, bidirectional=False, gru=False,
                 bag=False):
        super().__init__()
        self.embedding = nn.Embedding(V, E, padding_idx=0)
        self.lstm = (nn.GRU if gru else nn.LSTM)(
            E, H, L, batch_first=True, dropout=0.2,
            bidirectional=bidirectional)
        self.pool = pool
        self.bidirectional = bidirectional
        self.bag = bag

    def forward(self, ids, lengths):
        x = self.embedding(ids)
        feat = self.pooled(x, ids, lengths)
        if not self.bag:
            return feat
        # the bag of words: the mean embedding over the true length
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None])
        mean = (x * mask[:, :, None]).sum(1) / lengths[:, None].double()
        return torch.cat([feat, mean], dim=1)

    def pooled(self, x, ids, lengths):
        out, hn, _ = run_lstm(self.lstm, x, lengths, None, None)
        if self.pool == "last" and self.bidirectional:
            return torch.cat([hn[-2], hn[-1]], dim=1)
        if self.pool == "last":
            return hn[-1]
        if self.pool == "max":
            mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None])
            return out.masked_fill(~mask[:, :, None], float("-inf")).amax(1)
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None])
        return (out * mask[:, :, None]).sum(1) / lengths[:, None].double()


class Classifier(nn.Module):
    def __init__(self, V, E, H, L, C, mlp, pool, bidirectional=False,
                 gru=False, bag=False, wide=0.0):
        super().__init__()
        self.scale = wide
        self.lstm = LSTMBlock(V, E, H, L, pool, bidirectional, gru, bag)
        D = 2 if bidirectional else 1
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(D * H + (E if bag else 0), mlp[0]), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(mlp[0], mlp[1]), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(mlp[1], C), nn.LogSoftmax(dim=1))
        if wide:  # a linear bag of words added to the logits
            self.wide = nn.Embedding(V, C, padding_idx=0)
            with torch.no_grad():  # zero in the library; random here
                self.wide.weight.normal_(0, 0.3)
                self.wide.weight[0] = 0

    def forward(self, ids, lengths):
        if not self.scale:
            return self.classifier(self.lstm(ids, lengths))
        z = self.classifier[:-1](self.lstm(ids, lengths))
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None])
        w = (self.wide(ids) * mask[:, :, None]).sum(1)
        z = z + self.scale * w / lengths[:, None].double()
        return self.classifier[-1](z)


def classifier_case(name, pool, seed, bidirectional=False, gru=False,
                    bag=False, wide=0.0):
    V, E, H, L, C, mlp = 20, 6, 5, 2, 4, (16, 8)
    B, T = 4, 7
    torch.manual_seed(seed)
    model = Classifier(V, E, H, L, C, mlp, pool, bidirectional, gru,
                       bag, wide).double()
    model.eval()  # dropout off: the C side runs with train = 0
    lengths = torch.tensor([7, 5, 3, 1])
    ids = torch.randint(2, V, (B, T))
    ids[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    ids[1, 2] = 1  # an [UNK] inside a text
    y = torch.tensor([2, 0, 3, 2])
    t = {"ids": ids.double(), "len": lengths.double(), "y": y.double()}
    for n, p in model.named_parameters():
        t[n] = p.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    for step in range(5):
        opt.zero_grad()
        logp = model(ids, lengths)
        # the notebook: LogSoftmax in the model, then cross_entropy
        loss = nn.functional.cross_entropy(logp, y)
        loss.backward()
        if step == 0:
            t["logp"] = logp
            t["loss"] = loss.reshape(1)
            for n, p in model.named_parameters():
                t["grad." + n] = p.grad.detach().clone()
        opt.step()
    for n, p in model.named_parameters():
        t["adamw5." + n] = p
    save(os.path.join(OUT, name + ".bin"), t)


def losses_case(name, seed):
    """F.cross_entropy over steps with ignore_index, softmax, MSE and
    BCE-with-logits (mean reduction), values and gradients."""
    g = torch.Generator().manual_seed(seed)
    N, C, M = 12, 5, 10
    logits = torch.randn(N, C, generator=g).float()
    y = torch.randint(0, C, (N,), generator=g)
    y[[1, 4, 9]] = -100
    lg = logits.double().requires_grad_()
    loss = F.cross_entropy(lg, y, ignore_index=-100)
    loss.backward()
    x = torch.randn(M, generator=g).float() * 3
    t = torch.randn(M, generator=g).float()
    xm = x.double().requires_grad_()
    mse = F.mse_loss(xm, t.double())
    mse.backward()
    xb = (torch.randn(M, generator=g).float() * 4)
    xb[0] = 30.0
    xb[1] = -30.0
    tb = torch.rand(M, generator=g).float()
    xbd = xb.double().requires_grad_()
    bce = F.binary_cross_entropy_with_logits(xbd, tb.double())
    bce.backward()
    save(os.path.join(OUT, name + ".bin"), {
        "nll.logits": logits, "nll.y": y.float(),
        "nll.count": torch.tensor([float((y != -100).sum())]),
        "nll.loss": loss.reshape(1), "nll.grad": lg.grad,
        "softmax": torch.softmax(logits.double(), 1),
        "mse.x": x, "mse.t": t, "mse.loss": mse.reshape(1),
        "mse.grad": xm.grad,
        "bce.x": xb, "bce.t": tb, "bce.loss": bce.reshape(1),
        "bce.grad": xbd.grad})


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    lstm_case("lstm_2layer_state", B=3, T=6, I=7, H=5, L=2,
              lengths=[6, 4, 1], with_state=True, seed=1)
    lstm_case("lstm_1layer_wide", B=5, T=9, I=33, H=17, L=1,
              lengths=[3, 9, 1, 7, 9], with_state=False, seed=2)
    lstm_case("lstm_bi_2layer_state", B=3, T=6, I=7, H=5, L=2,
              lengths=[6, 4, 1], with_state=True, seed=6, bidirectional=True)
    lstm_case("lstm_bi_1layer_wide", B=4, T=9, I=33, H=17, L=1,
              lengths=[3, 9, 1, 7], with_state=False, seed=7,
              bidirectional=True)
    lstm_case("gru_2layer_state", B=3, T=6, I=7, H=5, L=2,
              lengths=[6, 4, 1], with_state=True, seed=11, gru=True)
    lstm_case("gru_1layer_wide", B=5, T=9, I=33, H=17, L=1,
              lengths=[3, 9, 1, 7, 9], with_state=False, seed=12, gru=True)
    lstm_case("gru_bi_2layer_state", B=3, T=6, I=7, H=5, L=2,
              lengths=[6, 4, 1], with_state=True, seed=13, bidirectional=True,
              gru=True)
    classifier_case("classifier_last", "last", seed=3)
    classifier_case("classifier_mean", "mean", seed=4)
    classifier_case("classifier_bi_last", "last", seed=8, bidirectional=True)
    classifier_case("classifier_bi_max", "max", seed=9, bidirectional=True)
    classifier_case("classifier_gru_bi_last", "last", seed=14,
                    bidirectional=True, gru=True)
    classifier_case("classifier_gru_mean", "mean", seed=15, gru=True)
    classifier_case("classifier_bi_max_bag", "max", seed=16,
                    bidirectional=True, bag=True)
    classifier_case("classifier_mean_wide_bag", "mean", seed=17, wide=3.0)
    losses_case("losses", seed=5)
    print("torch", torch.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
