"""Readers for the shared benchmark datasets (../shared/datasets by default)."""

import csv
from pathlib import Path

import numpy as np

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def cpu_description():
    """This machine's CPU model, core count and the vector/bf16 features that set its speed."""
    import os

    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    features = [name for flag, name in [("avx512f", "AVX-512"), ("avx512_vnni", "VNNI"),
                                        ("avx512_bf16", "BF16"), ("amx_bf16", "AMX")]
                if flag in flags] or (["AVX2"] if "avx2" in flags else [])
    return f"{model}, {os.cpu_count()} cores, {' '.join(features) or 'no AVX2'}"


def _tsv(path, header):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:] if header else rows


def sst2(data_dir, split):
    """SST-2 ``train`` or ``dev``: texts and 0/1 labels."""
    rows = _tsv(Path(data_dir) / "sst2" / f"{split}.tsv", header=True)
    return [r[0].strip() for r in rows], np.array([int(r[1]) for r in rows])


def ag_news(data_dir):
    """AG News test.csv: title + description, labels 1..4."""
    with open(Path(data_dir) / "ag_news" / "test.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    texts = [f"{title} {body}".replace("\\n", " ").replace("#39;", "'") for _, title, body in rows]
    return texts, np.array([int(r[0]) for r in rows])


def require(data_dir):
    """Exit with a clear message when the datasets folder is missing."""
    if not Path(data_dir).is_dir():
        raise SystemExit(f"Datasets folder {data_dir} not found; pass --data-dir.")


def cola(data_dir, split):
    """CoLA ``in_domain_train``, ``in_domain_dev`` or ``out_of_domain_dev``."""
    rows = _tsv(Path(data_dir) / "cola" / f"{split}.tsv", header=False)
    return [r[3] for r in rows], np.array([int(r[1]) for r in rows])


def sms_spam(data_dir, test_size=0.2, seed=0):
    """SMS spam split 80/20 by unique text (duplicates never straddle the split)."""
    rows = _tsv(Path(data_dir) / "sms_spam" / "SMSSpamCollection", header=False)
    texts = np.array([r[1] for r in rows], dtype=object)
    labels = np.array([r[0] for r in rows], dtype=object)
    unique = np.unique(texts)
    rng = np.random.default_rng(seed)
    test_texts = set(rng.choice(unique, size=int(test_size * len(unique)), replace=False))
    test = np.array([t in test_texts for t in texts])
    return (list(texts[~test]), labels[~test]), (list(texts[test]), labels[test])


def subsample(X, y, n, seed=0):
    """``n`` random rows of (X, y), all of them when ``n`` is None or too large."""
    if n is None or n >= len(X):
        return X, y
    rows = np.random.default_rng(seed).choice(len(X), size=n, replace=False)
    return [X[i] for i in rows], np.asarray(y)[rows]


def ag_news_split(data_dir, test_size=0.2, seed=0):
    """AG News test.csv split 80/20 at random with a fixed seed: (train, test) pairs."""
    texts, labels = ag_news(data_dir)
    test = np.zeros(len(texts), dtype=bool)
    rng = np.random.default_rng(seed)
    test[rng.choice(len(texts), size=int(test_size * len(texts)), replace=False)] = True
    pick = lambda mask: ([t for t, m in zip(texts, mask, strict=True) if m], labels[mask])  # noqa: E731
    return pick(~test), pick(test)


def goemotions(data_dir, split):
    """GoEmotions ``train``, ``dev`` or ``test``: texts and a (n, 28) 0/1 indicator.

    Texts holding ``"`` are CSV-quoted in these files, so the default quoting is used
    (see its SOURCE.md); column 2 lists label ids into ``emotions.txt``.
    """
    folder = Path(data_dir) / "goemotions"
    names = (folder / "emotions.txt").read_text(encoding="utf-8").split()
    with open(folder / f"{split}.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    Y = np.zeros((len(rows), len(names)), dtype=np.int64)
    for i, row in enumerate(rows):
        Y[i, [int(label) for label in row[1].split(",")]] = 1
    return [row[0] for row in rows], Y, names


def newsgroups(data_dir, split):
    """20 Newsgroups bydate ``train`` (both shards) or ``test``: posts and labels 0-19,
    in file order (group, then file name), with the group names."""
    import gzip
    import json

    folder = Path(data_dir) / "newsgroups"
    files = ["train-00.jsonl.gz", "train-01.jsonl.gz"] if split == "train" else ["test.jsonl.gz"]
    texts, labels = [], []
    for name in files:
        with gzip.open(folder / name, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(row["label"])
    names = (folder / "labels.txt").read_text(encoding="utf-8").split()
    return texts, np.array(labels), names


def newsgroups_tutorial_split(data_dir):
    """The random 80/20 split of all 18,846 posts of the x4nth055 BERT tutorial.

    scikit-learn's ``fetch_20newsgroups(subset="all", shuffle=True)`` order (each split
    shuffled by ``RandomState(0)``, then both by ``RandomState(42)``; see
    ``newsgroups/SOURCE.md``), cut by ``train_test_split(test_size=0.2)`` under the
    tutorial's ``np.random.seed(1)``: ((train texts, labels), (test texts, labels)).
    """
    from sklearn.model_selection import train_test_split

    texts, labels = [], []
    for split in ("train", "test"):
        X, y, _ = newsgroups(data_dir, split)
        order = np.arange(len(X))
        np.random.RandomState(0).shuffle(order)
        texts += [X[i] for i in order]
        labels.append(y[order])
    labels = np.concatenate(labels)
    order = np.arange(len(texts))
    np.random.RandomState(42).shuffle(order)
    texts, labels = [texts[i] for i in order], labels[order]
    X_train, X_test, y_train, y_test = train_test_split(texts, labels, test_size=0.2,
                                                        random_state=np.random.RandomState(1))
    return (X_train, y_train), (X_test, y_test)


def stsb(data_dir, split):
    """STS-B ``train``, ``dev`` or ``test`` (``sts-test.tsv``): sentence pairs as an
    (n, 2) object array and their 0-5 similarity scores."""
    folder = Path(data_dir) / "stsb"
    if split == "test":
        rows = _tsv(folder / "sts-test.tsv", header=False)
        pairs = [(r[5].strip(), r[6].strip()) for r in rows]
        scores = [float(r[4]) for r in rows]
    else:
        rows = _tsv(folder / f"{split}.tsv", header=True)
        pairs = [(r[7], r[8]) for r in rows]
        scores = [float(r[9]) for r in rows]
    return np.array(pairs, dtype=object), np.array(scores)
