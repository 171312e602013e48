"""Write a model file of an older skbert, for tests/test_safety.py's format tests.

Run with a checkout of the older commit: python make_old.py <old-checkout> <out-folder>
"""

import json
import os
import pickle
import sys

sys.path.insert(0, sys.argv[1])  # the older skbert first
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))

import numpy as np  # noqa: E402
import skops.io as sio  # noqa: E402

from skbert import BertTextClassifier  # noqa: E402
from tests.conftest import build_tiny_bert, make_texts  # noqa: E402

out = sys.argv[2]
os.makedirs(out, exist_ok=True)
X, y = make_texts(40)
clf = BertTextClassifier(model_name_or_path=build_tiny_bert(out + "/tiny"), max_iter=1,
                         max_length=32, batch_size=8, random_state=0).fit(X, y)
with open(out + "/model.pkl", "wb") as f:
    pickle.dump(clf, f)
sio.dump(clf, out + "/model.skops")
if "inference_dtype" in clf.get_params():
    clf.set_params(inference_dtype="float32")
with open(out + "/texts.json", "w") as f:
    json.dump(X[:10], f)
np.save(out + "/proba.npy", clf.predict_proba(X[:10]))
