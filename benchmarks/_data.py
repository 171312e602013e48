"""Readers for the shared benchmark datasets (../shared/datasets by default)."""

import csv
from pathlib import Path

import numpy as np

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"


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
