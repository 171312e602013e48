"""Count model loads in worker processes (Spark's Python workers, Ray's actors).

``counting_loads(folder)`` writes a ``sitecustomize.py`` into ``folder`` and puts that
folder first on ``PYTHONPATH`` with ``SKBERT_TEST_LOAD_LOG`` naming a log file, so that
every Python process started meanwhile (and inheriting the environment) wraps
``BertTextClassifier.from_pretrained`` and ``BertTextRegressor.from_pretrained``: each call
appends "<pid> <folder>" to the log. The test process itself is not patched. Nothing of
skbert's code knows about it.
"""

import collections
import contextlib
import os
from pathlib import Path

SITECUSTOMIZE = '''\
import os

_LOG = os.environ.get("SKBERT_TEST_LOAD_LOG")
if _LOG:
    import skbert

    def _counted(original):
        def from_pretrained(cls, name_or_path, *args, **kwargs):
            with open(_LOG, "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()} {os.fspath(name_or_path)}\\n")
            return original(name_or_path, *args, **kwargs)
        return classmethod(from_pretrained)

    for _cls in (skbert.BertTextClassifier, skbert.BertTextRegressor):
        _cls.from_pretrained = _counted(_cls.from_pretrained)
'''


@contextlib.contextmanager
def counting_loads(folder, **environ):
    """Within the block, Python processes started with this environment log their model
    loads; yields the log's path. ``environ`` sets further variables; the environment
    is put back afterwards."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    log = folder / "loads.log"
    log.touch()
    saved = dict(os.environ)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder)] + ([path] if path else []))
    os.environ["SKBERT_TEST_LOAD_LOG"] = str(log)
    os.environ.update(environ)
    try:
        yield log
    finally:
        os.environ.clear()
        os.environ.update(saved)


def loads(log):
    """{(pid, folder): number of loads} from the log."""
    lines = Path(log).read_text(encoding="utf-8").splitlines()
    return collections.Counter(tuple(line.split(" ", 1)) for line in lines if line)
