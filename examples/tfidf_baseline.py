#!/usr/bin/python3
"""A yardstick for news_classifier: TF-IDF (words and word pairs) + logistic
regression, on the very split a news_classifier run wrote.

    /usr/bin/python3 examples/tfidf_baseline.py --data FILE --split OUT/split.json
        [--ngrams 1|2]

(--ngrams 1: single words only; 2, the default: words and word pairs.)

Uses Debian's python3-sklearn (not part of the library). The regularisation
C is chosen on the validation rows only (1, 10 or 100); prints validation
and test accuracy and the test macro-F1 (scikit-learn's, as
news_classifier's report).
"""
import argparse
import csv
import gzip
import json
import sys

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def read_rows(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--ngrams", type=int, choices=(1, 2), default=2)
    a = p.parse_args()
    texts, labels = read_rows(a.data)
    split = json.load(open(a.split))
    part = {k: ([texts[i] for i in split[k]], [labels[i] for i in split[k]])
            for k in ("train", "val", "test")}
    vec = TfidfVectorizer(ngram_range=(1, a.ngrams), sublinear_tf=True,
                          min_df=1)
    xtr = vec.fit_transform(part["train"][0])
    best = None
    for c in (1.0, 10.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=5000)
        clf.fit(xtr, part["train"][1])
        val = accuracy_score(part["val"][1],
                             clf.predict(vec.transform(part["val"][0])))
        if best is None or val > best[0]:
            best = (val, c, clf)
    val, c, clf = best
    pred = clf.predict(vec.transform(part["test"][0]))
    acc = accuracy_score(part["test"][1], pred)
    f1 = f1_score(part["test"][1], pred, average="macro", zero_division=0)
    print(f"tfidf+logreg (ngrams 1-{a.ngrams}) C={c:g}: val accuracy {val:.4f}, test accuracy "
          f"{acc:.4f}, macro f1 {f1:.4f} ({len(pred)} test texts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
