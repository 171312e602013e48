"""Serve a fitted model over HTTP with a transformers pipeline, and check its answers.

A classifier fitted with ``pooling="pooler"`` saves as a standard transformers checkpoint
(``save_pretrained(..., standard=True)``): ``pipeline("text-classification")`` loads the
folder with no custom code. This script fits one on bundled SST-2 sentences, saves it,
serves the pipeline from a small web server (Python's standard library, on localhost, in
a thread of this process), posts the test sentences to it as a client would, and compares
the served probabilities with skbert's ``predict_proba``::

    python serve_with_transformers.py
    python serve_with_transformers.py --n-train 2000 --max-iter 3

Nothing is downloaded: the default model ships with skbert.
"""

import argparse
import json
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from skbert import BertTextClassifier
from skbert.datasets import load_sst2_sample


def serve(folder):
    """A web server on a free localhost port that answers POST {"inputs": [...]} with the
    pipeline's scores of every label; returns the server (``shutdown()`` stops it)."""
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(folder), device="cpu")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the name http.server calls)
            texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"]
            body = json.dumps(pipe(texts, truncation=True, top_k=None)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def post(url, texts):
    request = urllib.request.Request(url, data=json.dumps({"inputs": texts}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--max-iter", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--model", default=None, help="model id or folder; default: skbert's")
    args = parser.parse_args()

    X_train, y_train, X_test, y_test = load_sst2_sample()
    extra = {} if args.model is None else {"model_name_or_path": args.model}
    clf = BertTextClassifier(pooling="pooler", learning_rate=1e-4, max_iter=args.max_iter,
                             max_length=args.max_length, inference_dtype="float32",
                             random_state=0, **extra)
    clf.fit(X_train[:args.n_train], y_train[:args.n_train])
    texts = list(X_test[:args.n_test])
    with tempfile.TemporaryDirectory() as tmp:
        folder = clf.save_pretrained(Path(tmp) / "sst2-model", standard=True)
        config = json.loads((folder / "config.json").read_text())
        print(f"saved a {config['architectures'][0]}: id2label={config['id2label']}, "
              f"problem_type={config['problem_type']!r}")
        server = serve(folder)
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            rows = post(url, texts)
        finally:
            server.shutdown()
    served = np.array([[{r["label"]: r["score"] for r in row}[str(c)] for c in clf.classes_]
                       for row in rows])
    proba = clf.predict_proba(texts)
    print(f"served {len(rows)} texts over HTTP; first answer: {rows[0][0]}")
    print(f"largest difference from skbert's predict_proba: {np.abs(served - proba).max():.1e}")
    same = np.mean(served.argmax(1) == proba.argmax(1))
    print(f"same top label on {same:.0%} of the texts; served accuracy "
          f"{np.mean(clf.classes_[served.argmax(1)] == np.asarray(y_test[:args.n_test])):.3f}")


if __name__ == "__main__":
    main()
