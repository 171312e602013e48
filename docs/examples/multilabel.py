"""Multi-label: which aspects of a film a review talks about (acting, plot, music, visuals).

A review may talk about any of the four aspects, so the target is a 0/1 indicator matrix
(``MultiLabelBinarizer``), and BertTextClassifier trains one sigmoid output per aspect.
The reviews are generated from short phrases; the test reviews use phrases that no
training review uses ("the soundtrack is far too loud" teaches music, "the songs are
forgettable" tests it), so a model must know what the words mean, not only which words
it saw. TF-IDF + one LogisticRegression per aspect is the baseline::

    python multilabel.py
    python multilabel.py --n-train 400 --max-iter 4

Nothing is downloaded: the default model ships with skbert.
"""

import argparse

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report, f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MultiLabelBinarizer

from skbert import BertTextClassifier

# Phrases per aspect: the first six build training reviews, the last two test reviews.
PHRASES = {
    "acting": ["the cast is superb", "the lead actor overplays every scene",
               "the performances feel wooden", "she gives the best performance of her career",
               "the supporting actors steal the show", "nobody in the cast seems to care",
               "the actors deliver their lines with real conviction",
               "his portrayal of the father is unconvincing"],
    "plot": ["the story drags in the middle", "the twist comes out of nowhere",
             "the script is full of holes", "the narrative moves at a brisk pace",
             "the ending ties every thread together", "the premise never goes anywhere",
             "the storyline is predictable from the first scene",
             "the plot keeps you guessing until the end"],
    "music": ["the score is haunting", "the soundtrack is far too loud",
              "the composer repeats one theme endlessly", "the music lifts every scene",
              "the orchestral score is gorgeous", "the theme song gets stuck in your head",
              "the songs are forgettable", "the violins swell at all the right moments"],
    "visuals": ["the photography is stunning", "the special effects look cheap",
                "every frame looks like a painting", "the colours are washed out",
                "the camera work is shaky", "the set design is lavish",
                "the cinematography is breathtaking", "the costumes look like cheap plastic"],
}
OPENERS = ["", "honestly, ", "in short, ", "all in all, ", "i have to say "]


def reviews(n, split, seed):
    """``n`` reviews and their aspect sets, from the training or the test phrases."""
    rng = np.random.default_rng(seed)
    aspects, texts, tags = list(PHRASES), [], []
    for _ in range(n):
        chosen = [a for a in aspects if rng.random() < 0.4] or [str(rng.choice(aspects))]
        phrases = [str(rng.choice(PHRASES[a][:6] if split == "train" else PHRASES[a][6:]))
                   for a in chosen]
        rng.shuffle(phrases)
        texts.append(str(rng.choice(OPENERS)) + ", and ".join(phrases) + ".")
        tags.append(set(chosen))
    return texts, tags


def plot(rows, aspects, path, title):
    """F1 per aspect, and micro and macro F1, of each model, as grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [*aspects, "micro average", "macro average"]
    fig, ax = plt.subplots(figsize=(6.4, 0.55 * len(labels) + 2.0))
    height = 0.8 / len(rows)
    for i, ((name, values), colour) in enumerate(zip(rows, ["#9e9e9e", "#1f77b4"],
                                                     strict=False)):
        ys = np.arange(len(labels)) + i * height
        ax.barh(ys, values, height, color=colour, label=name)
        for y, value in zip(ys, values, strict=True):
            ax.text(value + 0.01, y, f"{value:.3f}", va="center", fontsize=9)
    ax.set_yticks(np.arange(len(labels)) + height * (len(rows) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("F1 on test reviews made of unseen phrases")
    ax.set_title(title, fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=9, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nchart: {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=3, help="epochs of fine-tuning")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--model", default=None, help="model id or folder; default: skbert's")
    parser.add_argument("--plot", help="write a chart of the F1 scores to this PNG")
    args = parser.parse_args(argv)

    X_train, tags_train = reviews(args.n_train, "train", seed=0)
    X_test, tags_test = reviews(args.n_test, "test", seed=1)
    binarizer = MultiLabelBinarizer(classes=list(PHRASES))
    Y_train = binarizer.fit_transform(tags_train)  # shape (n_train, 4)
    Y_test = binarizer.transform(tags_test)
    print(f"{len(X_train)} training reviews, {len(X_test)} test reviews, e.g.\n"
          f"  {X_train[0]!r} -> {sorted(tags_train[0])}")

    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          OneVsRestClassifier(LogisticRegression(C=10, max_iter=1000)))
    bert = BertTextClassifier(learning_rate=args.learning_rate, max_iter=args.max_iter,
                              max_length=args.max_length, random_state=0)
    if args.model:
        bert.set_params(model_name_or_path=args.model)
    rows = []
    for name, model in [("TF-IDF + LogisticRegression per aspect", tfidf),
                        ("BertTextClassifier", bert)]:
        predicted = model.fit(X_train, Y_train).predict(X_test)
        print(f"\n{name}\n" + classification_report(
            Y_test, predicted, target_names=binarizer.classes_, digits=3, zero_division=0))
        rows.append((name, [*f1_score(Y_test, predicted, average=None, zero_division=0),
                            f1_score(Y_test, predicted, average="micro", zero_division=0),
                            f1_score(Y_test, predicted, average="macro", zero_division=0)]))

    new = ["the soundtrack was lovely but the actors seemed bored",
           "gorgeous images, and a story that goes nowhere"]
    for text, labels in zip(new, binarizer.inverse_transform(bert.predict(new)), strict=True):
        print(f"{text!r} -> {list(labels)}")
    if args.plot:
        plot(rows, list(binarizer.classes_), args.plot,
             f"Multi-label aspects: {len(X_train)} training reviews")


if __name__ == "__main__":
    main()
