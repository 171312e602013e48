"""Sentence-pair regression on STS-B: ``BertTextRegressor`` against TF-IDF + Ridge.

Scores Pearson and Spearman correlations on the dev set (1,500 pairs; the split
fine-tuning papers report) and on the benchmark test set (1,379 pairs with gold scores;
the split sentence-embedding papers report) for:

- TF-IDF (word 1-2 grams, sublinear tf, fitted on the training sentences) + RidgeCV on
  the pair's features: the cosine of the two TF-IDF vectors, their element-wise product
  and absolute difference;
- the default model's frozen embeddings (all-MiniLM-L6-v2, mean pooling), cosine
  similarity, no training: what the model knows before fine-tuning;
- ``BertTextRegressor`` on the default model, the pair encoded as one sequence with
  [SEP] (a cross-encoder), all 5,749 training pairs, 3 epochs (``--epochs``);
- beside them published figures for small and base BERTs (../shared/datasets/README.md).

Writes benchmarks/results/bench_stsb[_quick].json and a chart beside it (``plot``;
``plots.py`` redraws it from the JSON). ``--quick``: 1,000 training
pairs, one epoch. Run it alone.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, cpu_description, require, stsb
from scipy.stats import pearsonr, spearmanr

from skbert import BertTextRegressor
from skbert._device import cpu_bf16_pays

RESULTS = Path(__file__).parent / "results"
# Published figures (x100 in the sources), ../shared/datasets/README.md.
PUBLISHED = [
    dict(model="bert-base-cased, HF run_glue.py (3 ep)", split="dev", pearson=0.8864,
         spearman=0.8848),
    dict(model="DistilBERT-base-uncased (DistilBERT paper)", split="dev", pearson=None,
         spearman=0.869),
    dict(model="BERT-base cross-encoder, STSb only (SBERT paper)", split="test",
         pearson=None, spearman=0.8430),
    dict(model="cross-encoder/stsb-TinyBERT-L4", split="test", pearson=None, spearman=0.8550),
    dict(model="all-MiniLM-L6-v2 frozen, cosine (MTEB)", split="test", pearson=0.8274,
         spearman=0.8203),
]


def correlations(y_true, y_pred):
    return dict(pearson=float(pearsonr(y_true, y_pred)[0]),
                spearman=float(spearmanr(y_true, y_pred)[0]))


def tfidf_ridge(X, y, sets):
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import RidgeCV

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    vectorizer.fit(list(X[:, 0]) + list(X[:, 1]))

    def features(pairs):
        a, b = vectorizer.transform(pairs[:, 0]), vectorizer.transform(pairs[:, 1])
        cosine = csr_matrix(np.asarray(a.multiply(b).sum(1)))
        return hstack([cosine, a.multiply(b), abs(a - b)]).tocsr()

    model = RidgeCV(alphas=np.logspace(-2, 2, 9)).fit(features(X), y)
    fit_s = time.perf_counter() - start
    return dict(fit_s=fit_s, **{split: correlations(t, model.predict(features(P)))
                                for split, (P, t) in sets.items()})


def frozen_cosine(sets):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from skbert._pretrained import DEFAULT_MODEL, resolve_model_path

    path = resolve_model_path(DEFAULT_MODEL)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    model.eval()

    def embed(texts):
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = tokenizer(list(texts[start:start + 64]), padding=True, truncation=True,
                                  max_length=128, return_tensors="pt")
                states = model(**batch).last_hidden_state
                mask = batch["attention_mask"][..., None].float()
                out.append(torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1),
                                                         dim=1))
        return torch.cat(out).numpy()

    return {split: correlations(t, (embed(P[:, 0]) * embed(P[:, 1])).sum(1))
            for split, (P, t) in sets.items()}


def plot(results, path):
    """Spearman correlation on dev and on test, measured and published, bars from 0."""
    from _plot import BLUE, LIGHT, cpu_of, figure, hbars, save, wrap

    rows = results["results"]
    shown = {split: [r for r in rows if r.get(split, {}).get("spearman") is not None]
             for split in ("dev", "test")}
    fig, axes = figure([0.42 * len(shown[s]) + 0.9 for s in shown])
    for ax, (split, picked) in zip(axes, shown.items(), strict=True):
        hbars(ax, [wrap(r["model"].replace("Regressor (", "Regressor\n("), 30) for r in picked],
              [r[split]["spearman"] for r in picked],
              [LIGHT if r.get("published") else BLUE for r in picked], "{:.3f}".format,
              xlabel=f"Spearman correlation, STS-B {split}", xmax=1.12)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    save(fig, path, "STS-B: measured here (blue), published (grey)", cpu_of(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    args = parser.parse_args()
    require(args.data_dir)
    X, y = stsb(args.data_dir, "train")
    sets = {split: stsb(args.data_dir, split) for split in ("dev", "test")}
    epochs = 1 if args.quick else args.epochs
    if args.quick:
        rows = np.random.default_rng(0).permutation(len(X))[:1000]
        X, y = X[rows], y[rows]
    cpu = cpu_description()
    dtype = "bfloat16" if cpu_bf16_pays() else "float32"
    print(f"STS-B: {len(X)} training pairs; CPU: {cpu}; training dtype {dtype}", flush=True)

    rows = [dict(model="TF-IDF + RidgeCV", train_pairs=len(X), **tfidf_ridge(X, y, sets))]
    rows.append(dict(model="all-MiniLM-L6-v2 frozen, cosine", train_pairs=0,
                     **frozen_cosine(sets)))
    reg = BertTextRegressor(learning_rate=args.learning_rate, max_iter=epochs, batch_size=32,
                            training_dtype=dtype, random_state=0)
    start = time.perf_counter()
    reg.fit(X, y)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predictions = {split: reg.predict(P) for split, (P, _) in sets.items()}
    predict_s = time.perf_counter() - start
    rows.append(dict(model=f"skbert BertTextRegressor ({epochs} ep, lr {args.learning_rate:g})",
                     train_pairs=len(X), fit_s=fit_s, predict_s=predict_s,
                     **{split: correlations(sets[split][1], predictions[split])
                        for split in sets}))
    for p in PUBLISHED:
        rows.append(dict(model=p["model"], published=True,
                         **{p["split"]: dict(pearson=p["pearson"], spearman=p["spearman"])}))

    def cell(r, split, key):
        value = r.get(split, {}).get(key)
        return "-" if value is None else f"{value:.3f}"

    print(f"\nSTS-B, Pearson / Spearman; CPU: {cpu}")
    print(f"{'model':<52} {'dev P':>6} {'dev S':>6} {'test P':>6} {'test S':>6} {'fit s':>6}")
    for r in rows:
        fit = f"{r['fit_s']:.0f}" if "fit_s" in r else "-"
        print(f"{r['model']:<52} {cell(r, 'dev', 'pearson'):>6} {cell(r, 'dev', 'spearman'):>6} "
              f"{cell(r, 'test', 'pearson'):>6} {cell(r, 'test', 'spearman'):>6} {fit:>6}")
    RESULTS.mkdir(exist_ok=True)
    stem = f"bench_stsb{'_quick' if args.quick else ''}"
    results = dict(cpu=cpu, training_dtype=dtype, epochs=epochs,
                   learning_rate=args.learning_rate, results=rows)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
