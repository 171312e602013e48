"""Text pairs: does this review talk about that aspect? (review, aspect) -> yes / no.

A two-column DataFrame is a text pair: BertTextClassifier encodes each row as one
sequence, ``[CLS] review [SEP] aspect [SEP]``, so the model reads the review in the light
of the question. The reviews are generated from short phrases about acting, plot, music
and visuals; the test reviews use phrases that no training review uses. TF-IDF of the two
texts side by side is the baseline: a linear model adds up the weights of the review's
words and the aspect's, so it cannot match one against the other::

    python text_pairs.py
    python text_pairs.py --n-train 300 --max-iter 4

Nothing is downloaded: the default model ships with skbert.
"""

import argparse

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report
from sklearn.pipeline import make_pipeline

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


def pairs(n, split, seed):
    """``n`` reviews, each asked about every aspect: a (review, aspect) frame and yes/no."""
    rng = np.random.default_rng(seed)
    aspects, rows, labels = list(PHRASES), [], []
    for _ in range(n):
        chosen = [a for a in aspects if rng.random() < 0.4] or [str(rng.choice(aspects))]
        phrases = [str(rng.choice(PHRASES[a][:6] if split == "train" else PHRASES[a][6:]))
                   for a in chosen]
        rng.shuffle(phrases)
        review = ", and ".join(phrases) + "."
        for aspect in aspects:
            rows.append((review, aspect))
            labels.append("yes" if aspect in chosen else "no")
    return pd.DataFrame(rows, columns=["review", "aspect"]), np.array(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=100, help="reviews (4 pairs each)")
    parser.add_argument("--n-test", type=int, default=50, help="reviews (4 pairs each)")
    parser.add_argument("--max-iter", type=int, default=3, help="epochs of fine-tuning")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--model", default=None, help="model id or folder; default: skbert's")
    args = parser.parse_args(argv)

    X_train, y_train = pairs(args.n_train, "train", seed=0)
    X_test, y_test = pairs(args.n_test, "test", seed=1)
    print(f"{len(X_train)} training pairs, {len(X_test)} test pairs, e.g.\n"
          f"{X_train.assign(label=y_train).head(4).to_string(index=False)}")

    tfidf = make_pipeline(
        make_column_transformer((TfidfVectorizer(ngram_range=(1, 2)), "review"),
                                (TfidfVectorizer(), "aspect")),
        LogisticRegression(C=10, max_iter=1000))
    bert = BertTextClassifier(learning_rate=args.learning_rate, max_iter=args.max_iter,
                              max_length=args.max_length, random_state=0)
    if args.model:
        bert.set_params(model_name_or_path=args.model)
    for name, model in [("TF-IDF of review and aspect + LogisticRegression", tfidf),
                        ("BertTextClassifier on (review, aspect) pairs", bert)]:
        predicted = model.fit(X_train, y_train).predict(X_test)
        print(f"\n{name}\n" + classification_report(y_test, predicted, digits=3,
                                                     zero_division=0))

    new = pd.DataFrame({"review": ["the soundtrack was lovely but the actors seemed bored"] * 4,
                        "aspect": list(PHRASES)})
    new["P(yes)"] = bert.predict_proba(new[["review", "aspect"]])[:, 1].round(3)
    print(new.to_string(index=False))


if __name__ == "__main__":
    main()
