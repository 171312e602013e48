"""Data-parallel training: two CPU processes (gloo) launched by torchrun."""

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from skbert import BertTextClassifier

from .conftest import make_texts

ROOT = Path(__file__).resolve().parents[1]

# Run by every process. Records the rows of each batch this process trained on, a hash
# of the weights after every optimizer step, and the checkpoints it saw; rank 0 pickles
# the fitted estimator.
SCRIPT = textwrap.dedent("""
    import hashlib, json, os, pickle, sys
    import torch.distributed as dist
    from skbert import BertTextClassifier, _checkpoint, _engine, _sources
    from tests.conftest import make_texts

    model_dir, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    seen, hashes = [], []
    loss = _sources.TokenBatches.loss
    def recording_loss(self, network, batch, part):
        seen.append([int(r) for r in self.rows[batch[part]]])
        return loss(self, network, batch, part)
    _sources.TokenBatches.loss = recording_loss
    step = _engine.TrainingState.step
    def recording_step(self, parameters, *args, **kwargs):
        step(self, parameters, *args, **kwargs)
        data = b"".join(p.detach().numpy().tobytes() for p in parameters)
        hashes.append(hashlib.sha1(data).hexdigest())
    _engine.TrainingState.step = recording_step
    writes = []
    write = _checkpoint.write_checkpoint
    def recording_write(*args, **kwargs):
        writes.append(args[1])
        return write(*args, **kwargs)
    _checkpoint.write_checkpoint = recording_write

    X, y = make_texts(96, seed=7)
    params = json.loads(os.environ["SKBERT_TEST_PARAMS"])
    if "head" in params:  # JSON has no tuples
        params["head"] = tuple(params["head"])
    clf = BertTextClassifier(model_name_or_path=model_dir, **params)
    if mode == "fit":
        clf.fit(X, y)
    elif mode == "fit_es":  # early stopping: validation and the restore of the best epoch
        clf.fit(X, y)
        state = clf.model_.state_dict()
        hashes = [hashlib.sha1(b"".join(state[k].numpy().tobytes() for k in sorted(state)))
                  .hexdigest()]
    elif mode == "mlm":  # masked-LM pretraining on the same loop
        from skbert import MaskedLMPretrainer
        clf = MaskedLMPretrainer(model_dir, max_length=32, batch_size=16, learning_rate=1e-3,
                                 device="cpu", random_state=0, max_iter=2,
                                 training_dtype="float32").fit(X)
    else:
        for start in range(0, 96, 48):
            clf.partial_fit(X[start:start + 48], y[start:start + 48], classes=[0, 1])
    rank = dist.get_rank()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"seen": seen, "hashes": hashes, "writes": writes,
                   "world": dist.get_world_size()}, f)
    if rank == 0:
        with open(os.path.join(out, "model.pkl"), "wb") as f:
            pickle.dump(clf, f)
    # Leave together: a process exiting with its process group alive can abort in gloo.
    dist.barrier()
    dist.destroy_process_group()
    # Then leave at once: a rank that had written everything once aborted in the
    # interpreter's teardown ("terminate called without an active exception").
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
""")


@pytest.fixture(scope="module")
def no_dropout_model(tiny_model_dir, tmp_path_factory):
    """The tiny BERT without dropout, so that one and two processes compute the same."""
    from transformers import AutoTokenizer, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    BertModel.from_pretrained(
        tiny_model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    ).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return str(folder)


PARAMS = dict(max_iter=2, batch_size=16, learning_rate=5e-3, max_length=32, device="cpu",
              random_state=None, head_dropout=0.0, training_dtype="float32",
              inference_dtype="float32")


def _launch(model_dir, out, mode, params):
    out.mkdir()
    script = out / "train.py"
    script.write_text(SCRIPT)
    # gloo over the loopback interface: no hostname lookup on machines without a network.
    env = dict(os.environ, SKBERT_TEST_PARAMS=json.dumps(params), OMP_NUM_THREADS="1",
               GLOO_SOCKET_IFNAME="lo",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(script), model_dir, str(out), mode],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    with open(out / "model.pkl", "rb") as f:
        return ranks, pickle.load(f)


@pytest.fixture(scope="module")
def launched(no_dropout_model, tmp_path_factory):
    """Records of a two-process fit, and rank 0's estimator."""
    return _launch(no_dropout_model, tmp_path_factory.mktemp("ddp") / "fit", "fit", PARAMS)


def test_ranks_train_on_disjoint_shares_of_each_batch(launched):
    """Check that the two processes saw different rows, together every training row once
    per epoch."""
    ranks, clf = launched
    assert [r["world"] for r in ranks] == [2, 2]
    first, second = ranks[0]["seen"], ranks[1]["seen"]
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        assert a and b and not set(a) & set(b)
    n_batches = len(first) // PARAMS["max_iter"]
    epoch = sorted(r for batch in first[:n_batches] + second[:n_batches] for r in batch)
    assert epoch == list(range(96))


def test_weights_agree_across_ranks_after_every_step(launched):
    """Check that every optimizer step leaves bitwise-identical weights in both processes."""
    ranks, _ = launched
    assert len(ranks[0]["hashes"]) == len(ranks[0]["seen"])
    assert ranks[0]["hashes"] == ranks[1]["hashes"]
    assert len(set(ranks[0]["hashes"])) == len(ranks[0]["hashes"])  # the weights did move


def test_fit_in_two_processes_matches_one(no_dropout_model, tmp_path):
    """Check that a data-parallel fit equals one process training on the whole batches."""
    params = dict(PARAMS, random_state=0)
    (ranks, parallel) = _launch(no_dropout_model, tmp_path / "fit", "fit", params)
    assert ranks[0]["hashes"] == ranks[1]["hashes"]
    X, y = make_texts(96, seed=7)
    single = BertTextClassifier(model_name_or_path=no_dropout_model, **params).fit(X, y)
    np.testing.assert_allclose(parallel.loss_curve_, single.loss_curve_, rtol=1e-4)
    texts, _ = make_texts(40, seed=8)
    np.testing.assert_allclose(parallel.predict_proba(texts), single.predict_proba(texts),
                               atol=1e-4)


def test_early_stopping_batch_norm_ranks_end_with_one_model(no_dropout_model, tmp_path):
    """Check that with early stopping and a BatchNorm head every process ends with the same
    weights and running statistics (each kept the best epoch of its own statistics)."""
    params = dict(PARAMS, random_state=0, head=[8], early_stopping=True, max_iter=4,
                  n_iter_no_change=1, tol=0.0, validation_fraction=0.25)
    ranks, parallel = _launch(no_dropout_model, tmp_path / "es", "fit_es", params)
    assert ranks[0]["hashes"] == ranks[1]["hashes"]
    assert len(parallel.validation_scores_) >= 1


def test_masked_lm_in_two_processes_matches_one(no_dropout_model, tmp_path):
    """Check that MaskedLMPretrainer trains data-parallel on the one loop: weights in step
    across ranks and the loss curve of one process on the whole batches."""
    from skbert import MaskedLMPretrainer

    ranks, parallel = _launch(no_dropout_model, tmp_path / "mlm", "mlm", {})
    assert ranks[0]["hashes"] == ranks[1]["hashes"] and len(ranks[0]["hashes"]) == 12
    X, _ = make_texts(96, seed=7)
    single = MaskedLMPretrainer(no_dropout_model, max_length=32, batch_size=16,
                                learning_rate=1e-3, device="cpu", random_state=0,
                                max_iter=2, training_dtype="float32").fit(X)
    np.testing.assert_allclose(parallel.loss_curve_, single.loss_curve_, rtol=1e-4)


@pytest.fixture(scope="module")
def streamed(no_dropout_model, tmp_path_factory):
    """Records of a two-process partial_fit stream that checkpoints, and rank 0's model."""
    out = tmp_path_factory.mktemp("ddp") / "stream"
    params = dict(PARAMS, random_state=0, checkpoint_dir=str(out / "ckpt"), checkpoint_every=2)
    return _launch(no_dropout_model, out, "partial_fit", params), out / "ckpt"


def test_partial_fit_stream_in_two_processes_matches_one(streamed, no_dropout_model):
    """Check that a data-parallel partial_fit stream equals one process on whole batches,
    with the weights in step and checkpoints written by rank 0 only."""
    (ranks, parallel), checkpoints = streamed
    assert ranks[0]["hashes"] == ranks[1]["hashes"]
    assert ranks[0]["writes"] and ranks[1]["writes"] == []
    assert sorted(p.name for p in checkpoints.iterdir() if not p.name.startswith(".")) == [
        f"ckpt-{step:012d}" for step in ranks[0]["writes"][-2:]
    ]
    X, y = make_texts(96, seed=7)
    single = BertTextClassifier(model_name_or_path=no_dropout_model,
                                **dict(PARAMS, random_state=0))
    for start in range(0, 96, 48):
        single.partial_fit(X[start : start + 48], y[start : start + 48], classes=[0, 1])
    np.testing.assert_allclose(parallel.loss_curve_, single.loss_curve_, rtol=1e-4)
    texts, _ = make_texts(40, seed=8)
    np.testing.assert_allclose(parallel.predict_proba(texts), single.predict_proba(texts),
                               atol=1e-4)


MISMATCH_SCRIPT = textwrap.dedent("""
    import os, sys
    import torch.distributed as dist
    from skbert import BertTextClassifier
    from tests.conftest import make_texts

    dist.init_process_group("gloo")
    X, y = make_texts(32, seed=7 + dist.get_rank())  # each rank loads other data
    clf = BertTextClassifier(sys.argv[1], max_iter=1, batch_size=16, max_length=32,
                             device="cpu")
    try:
        clf.fit(X, y)
    except ValueError as exc:
        print(f"rank {dist.get_rank()}: {exc}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
""")


def test_ranks_given_different_data_all_raise(tiny_model_dir, tmp_path):
    """Check that processes given different data raise together, instead of training on a
    mix or waiting on each other forever."""
    script = tmp_path / "mismatch.py"
    script.write_text(MISMATCH_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(script), tiny_model_dir],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank}: The 2 processes of this data-parallel run were given " \
               "different training data" in result.stdout
