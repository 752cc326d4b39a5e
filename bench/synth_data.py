#!/usr/bin/env python3
"""Writes a CSV the size of the real dataset for timing the classifier.

Each row concatenates randomly drawn articles of a source file (the dev
data) until it holds at least --min-words words, so every text fills
news_classifier's 512 tokens as most real articles do; the category is that
of the first article. Standard library only.

  bench/synth_data.py SOURCE.csv[.gz] OUT.csv [--rows 10200] [--seed 0]
"""
import argparse
import csv
import gzip
import random
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=10200)
    p.add_argument("--min-words", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    opener = gzip.open if a.source.endswith(".gz") else open
    with opener(a.source, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(a.seed)
    csv.field_size_limit(sys.maxsize)
    with open(a.out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["language", "category", "newspaper", "hash", "text"])
        for i in range(a.rows):
            first = rng.choice(rows)
            parts, words = [first["text"]], len(first["text"].split())
            while words < a.min_words:
                t = rng.choice(rows)["text"]
                parts.append(t)
                words += len(t.split())
            w.writerow(["es", first["category"], "synthetic", str(i),
                        "\n".join(parts)])


if __name__ == "__main__":
    main()
