#!/usr/bin/python3
"""The PyTorch twin of examples/news_classifier, for side-by-side checks.

Needs Debian's python3-torch (run with /usr/bin/python3). Three commands:

  train   trains the notebook's model (its module structure and names) with
          the same data, split, tokenizer, vocabulary, batch size, AdamW and
          early stopping as news_classifier, and prints test accuracy,
          macro-F1 and time per epoch.
  check   loads a news_classifier checkpoint (safetensors read by hand) into
          the notebook's module, and compares its log-probabilities with
          `news_classifier predict --json` on the same texts.
  tb      decodes TensorBoard event files (TFRecord framing, CRC-32C
          checked) and prints their scalars.

The notebook's bugs are fixed here the same way as in C: the vocabulary is
the most frequent words of the training split, the embedding is as large as
the vocabulary, and the LSTM sees packed sequences, so the feature is the
state at each text's true last token (or the mean/max of its outputs).
"""
import argparse
import csv
import gzip
import io
import json
import math
import os
import re
import struct
import subprocess
import sys
import time
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


# ---- data, as news_classifier reads it ----

def read_rows(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def simple_tokenizer(text):
    text = text.lower()
    text = re.sub(r"[^a-záéíóúüñ]+", " ", text)
    return text.strip().split()


def build_vocab(rows, train_idx, size):
    counts = Counter()
    for i in train_idx:
        counts.update(simple_tokenizer(rows[i]["text"]))
    tokens = ["[PAD]", "[UNK]"] + [w for w, _ in counts.most_common(size - 2)]
    return tokens, {t: i for i, t in enumerate(tokens)}


def encode(vocab, text, max_len):
    ids = [vocab.get(t, 1) for t in simple_tokenizer(text)[:max_len]] or [1]
    return ids


# ---- the notebook's module structure ----

class LSTMBlock(nn.Module):
    def __init__(self, V, E, H, L, dropout, pool, bidirectional=False,
                 cell="lstm", bag=False):
        super().__init__()
        self.embedding = nn.Embedding(V, E, padding_idx=0)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.lstm = rnn(E, H, L, batch_first=True, dropout=dropout,
                        bidirectional=bidirectional)
        self.pool = pool
        self.bidirectional = bidirectional
        self.bag = bag

    def forward(self, ids, lengths):
        x = self.embedding(ids)
        feat = self.pooled(x, ids, lengths)
        if not self.bag:
            return feat
        # --bag: the mean embedding over the true length beside it
        mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        return torch.cat([feat, (x * mask[:, :, None]).sum(1) /
                          lengths[:, None]], dim=1)

    def pooled(self, x, ids, lengths):
        packed = pack_padded_sequence(x, lengths,
                                      batch_first=True, enforce_sorted=False)
        out, hn = self.lstm(packed)
        if isinstance(hn, tuple):  # an LSTM's (h_n, c_n)
            hn = hn[0]
        if self.pool == "last" and self.bidirectional:
            return torch.cat([hn[-2], hn[-1]], dim=1)
        if self.pool == "last":
            return hn[-1]
        out, _ = pad_packed_sequence(out, batch_first=True,
                                     total_length=ids.shape[1])
        mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        if self.pool == "mean":
            return (out * mask[:, :, None]).sum(1) / lengths[:, None]
        return out.masked_fill(~mask[:, :, None], -math.inf).max(1).values


class Classifier(nn.Module):
    def __init__(self, V, E, H, L, C, dropout=0.2, pool="last",
                 mlp=(512, 256), bidirectional=False, cell="lstm",
                 bag=False, wide=0.0):
        super().__init__()
        self.scale = wide
        self.lstm = LSTMBlock(V, E, H, L, dropout, pool, bidirectional, cell,
                              bag)
        D = 2 if bidirectional else 1
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(D * H + (E if bag else 0), mlp[0]),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(mlp[0], mlp[1]), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(mlp[1], C), nn.LogSoftmax(dim=1))
        if wide:  # --wide: a linear bag of words added to the logits
            self.wide = nn.Embedding(V, C, padding_idx=0)

    def forward(self, ids, lengths):
        if not self.scale:
            return self.classifier(self.lstm(ids, lengths))
        z = self.classifier[:-1](self.lstm(ids, lengths))
        mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        w = (self.wide(ids) * mask[:, :, None]).sum(1) / lengths[:, None]
        return self.classifier[-1](z + self.scale * w)


def batches(encoded, rows, labels=None):
    T = max(len(encoded[r]) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, :len(encoded[r])] = torch.tensor(encoded[r])
    lengths = torch.tensor([len(encoded[r]) for r in rows])
    y = None if labels is None else torch.tensor([labels[r] for r in rows])
    return ids, lengths, y


def evaluate(model, encoded, labels, idx, bs=32):
    model.eval()
    preds, loss = [], 0.0
    with torch.no_grad():
        for s in range(0, len(idx), bs):
            ids, lengths, y = batches(encoded, idx[s:s + bs], labels)
            logp = model(ids, lengths)
            loss += F.nll_loss(logp, y, reduction="sum").item()
            preds += logp.argmax(1).tolist()
    acc = sum(p == labels[r] for p, r in zip(preds, idx)) / max(len(idx), 1)
    return loss / max(len(idx), 1), acc, preds


def macro_f1(truth, pred):
    labels = sorted(set(truth) | set(pred))
    f1s = []
    for c in labels:
        tp = sum(t == c and p == c for t, p in zip(truth, pred))
        fp = sum(t != c and p == c for t, p in zip(truth, pred))
        fn = sum(t == c and p != c for t, p in zip(truth, pred))
        pr = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    return sum(f1s) / len(f1s)


def cmd_train(a):
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.flush_denormal:
        torch.set_flush_denormal(True)
    rows = read_rows(a.data)
    split = json.load(open(a.split))
    classes = sorted({r["category"] for r in rows})
    labels = [classes.index(r["category"]) for r in rows]
    tokens, vocab = build_vocab(rows, split["train"], a.vocab_size)
    encoded = [encode(vocab, r["text"], a.max_len) for r in rows]
    model = Classifier(len(tokens), a.embed_dim, a.hidden, a.layers,
                       len(classes), a.dropout, a.pool)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr,
                            weight_decay=a.weight_decay)
    train = list(split["train"])
    if a.time_steps:
        return time_steps(a, model, opt, encoded, labels, train)
    best, wait, times = math.inf, 0, []
    print(f"data {a.data}: {len(rows)} rows, split "
          f"{len(split['train'])}/{len(split['val'])}/{len(split['test'])}, "
          f"vocabulary {len(tokens)}, pool {a.pool}, "
          f"{torch.get_num_threads()} threads", flush=True)
    for epoch in range(1, a.epochs + 1):
        model.train()
        t0 = time.time()
        order = torch.randperm(len(train)).tolist()
        lsum, correct = 0.0, 0
        for s in range(0, len(train), a.batch_size):
            rs = [train[k] for k in order[s:s + a.batch_size]]
            ids, lengths, y = batches(encoded, rs, labels)
            opt.zero_grad()
            logp = model(ids, lengths)
            loss = F.cross_entropy(logp, y)  # as the notebook
            loss.backward()
            opt.step()
            lsum += loss.item() * len(rs)
            correct += (logp.argmax(1) == y).sum().item()
        times.append(time.time() - t0)
        tl, ta = lsum / len(train), correct / len(train)
        vl, va, _ = evaluate(model, encoded, labels, split["val"])
        print(f"epoch {epoch:2d}  train loss {tl:.4f} acc {ta:.3f}  "
              f"val loss {vl:.4f} acc {va:.3f}  {times[-1]:.1f} s", flush=True)
        if tl < best:
            best, wait = tl, 0
        else:
            wait += 1
            if wait >= a.patience:
                print(f"early stopping at epoch {epoch}")
                break
    _, acc, preds = evaluate(model, encoded, labels, split["test"])
    f1 = macro_f1([labels[r] for r in split["test"]], preds)
    print(f"test accuracy {acc:.4f}, macro f1 {f1:.4f}, "
          f"{sum(times) / len(times):.1f} s per epoch")


def time_steps(a, model, opt, encoded, labels, train):
    """Times --time-steps training steps (after 3 warm-up steps) and
    extrapolates to one epoch of the training split."""
    model.train()
    order = torch.randperm(len(train)).tolist()
    steps = (len(train) + a.batch_size - 1) // a.batch_size
    n = min(a.time_steps, steps - 3)
    t0 = None
    for s in range(n + 3):
        if s == 3:
            t0 = time.time()
        rs = [train[k] for k in order[s * a.batch_size:(s + 1) * a.batch_size]]
        ids, lengths, y = batches(encoded, rs, labels)
        opt.zero_grad()
        loss = F.cross_entropy(model(ids, lengths), y)
        loss.backward()
        opt.step()
    per = (time.time() - t0) / n
    print(f"{n} steps of batch {a.batch_size}: {per * 1e3:.1f} ms per step, "
          f"{per * steps:.1f} s per epoch of {len(train)} texts "
          f"(extrapolated), {torch.get_num_threads()} threads")


# ---- checkpoints ----

def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", name
        b, en = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:en]), dtype=torch.float32)
        tensors[name] = t.reshape(e["shape"])
    return tensors, meta


def cmd_check(a):
    tensors, meta = read_safetensors(a.model)
    tokens = json.loads(meta["vocab"])
    classes = json.loads(meta["classes"])
    cfg = json.loads(meta["config"])
    model = Classifier(len(tokens), cfg["embed_dim"], cfg["hidden"],
                       cfg["layers"], len(classes), cfg["dropout"],
                       cfg.get("pool", "last"), tuple(cfg["mlp"]),
                       cfg.get("bidirectional", False),
                       cfg.get("cell", "lstm"), cfg.get("bag", False),
                       cfg.get("wide", 0.0))
    missing, unexpected = model.load_state_dict(tensors, strict=True)
    model.eval()
    vocab = {t: i for i, t in enumerate(tokens)}
    out = subprocess.run([a.binary, "predict", "--json", "--model", a.model]
                         + a.texts, capture_output=True, text=True, check=True)
    worst = 0.0
    for line, path in zip(out.stdout.splitlines(), a.texts):
        c_logp = torch.tensor(json.loads(line)["logp"])
        ids = torch.tensor([encode(vocab, open(path, encoding="utf-8").read(),
                                   cfg["max_len"])])
        with torch.no_grad():
            t_logp = model(ids, torch.tensor([ids.shape[1]]))[0]
        d = (c_logp - t_logp).abs().max().item()
        worst = max(worst, d)
        print(f"{path}: C {classes[c_logp.argmax()]}, PyTorch "
              f"{classes[t_logp.argmax()]}, max |logp difference| {d:.2e}")
    ok = worst <= 1e-4
    print(f"{len(a.texts)} texts, {sum(p.numel() for p in model.parameters())}"
          f" parameters loaded by name; worst difference {worst:.2e} "
          f"({'within' if ok else 'beyond'} 1e-4)")
    sys.exit(0 if ok else 1)


# ---- TensorBoard event files ----

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = varint(b, i)
        elif w == 1:
            v, i = b[i:i + 8], i + 8
        elif w == 5:
            v, i = b[i:i + 4], i + 4
        elif w == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError(f"wire type {w}")
        yield f, v


def cmd_tb(a):
    for root, _, files in sorted(os.walk(a.dir)):
        for name in sorted(files):
            if "tfevents" not in name:
                continue
            raw = open(os.path.join(root, name), "rb").read()
            i, records = 0, 0
            print(os.path.join(root, name))
            while i < len(raw):
                n = struct.unpack("<Q", raw[i:i + 8])[0]
                assert struct.unpack("<I", raw[i + 8:i + 12])[0] == \
                    masked(crc32c(raw[i:i + 8])), "length CRC"
                data = raw[i + 12:i + 12 + n]
                assert struct.unpack("<I", raw[i + 12 + n:i + 16 + n])[0] == \
                    masked(crc32c(data)), "data CRC"
                i += 16 + n
                records += 1
                ev = dict(fields(data))
                if 3 in ev:
                    print(f"  file_version {ev[3].decode()}")
                if 5 in ev:
                    for f, val in fields(ev[5]):
                        v = dict(fields(val))
                        print(f"  step {ev.get(2, 0):3d}  {v[1].decode():10s}"
                              f" {struct.unpack('<f', v[2])[0]:.4f}")
            print(f"  {records} records, all CRCs good")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--split", required=True, help="news_classifier's split.json")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--max-len", type=int, default=512)
    t.add_argument("--vocab-size", type=int, default=50000)
    t.add_argument("--embed-dim", type=int, default=256)
    t.add_argument("--hidden", type=int, default=128)
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--dropout", type=float, default=0.2)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=1e-5)
    t.add_argument("--patience", type=int, default=3)
    t.add_argument("--pool", choices=["last", "mean", "max"], default="last")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--time-steps", type=int, default=0,
                   help="only time this many training steps")
    t.add_argument("--flush-denormal", action="store_true",
                   help="torch.set_flush_denormal(True), as liblstm runs")
    c = sub.add_parser("check")
    c.add_argument("--model", required=True)
    c.add_argument("--binary", default="examples/news_classifier")
    c.add_argument("texts", nargs="+")
    b = sub.add_parser("tb")
    b.add_argument("dir")
    a = p.parse_args()
    {"train": cmd_train, "check": cmd_check, "tb": cmd_tb}[a.cmd](a)


if __name__ == "__main__":
    main()
