"""Atomic files and content hashes for caches (mels, corpora, prepared datasets).

Every write goes to a temporary file in the destination folder and is renamed into place with
``os.replace``: a killed process leaves either the old entry, the new one, or a ``.tmp`` file that
readers ignore and the next writer cleans up; never a half-written entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

TMP_SUFFIX = ".tmp"


def default_cache_root() -> Path:
    """``$TORTOISE_LITE_CACHE`` or ``~/.cache/tortoise_lite``."""
    from tortoise_lite.paths import cache_dir

    return cache_dir()


def settings_hash(settings: dict, n: int = 12) -> str:
    """Stable short hash of a JSON-serializable settings dict."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (the audio content key of the mel cache)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            # No fsync: the rename alone makes a killed process leave no partial entry; durability
            # across power loss is not worth ~10 ms per cache entry for a regenerable cache.
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, default=str) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    return _atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Load an array written by ``atomic_save_npy`` (never unpickles)."""
    return np.load(path, allow_pickle=False)


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete leftovers of interrupted atomic writes (``.*.tmp`` files and ``.*.tmp`` folders)."""
    folder = Path(folder)
    if not folder.exists():
        return 0
    n = 0
    for p in folder.rglob(f".*{TMP_SUFFIX}"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


def build_dir_atomically(final: str | os.PathLike, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp_dir)`` in a temporary sibling folder, then rename it to ``final``.

    If ``final`` already exists it is returned untouched (complete by construction). A crash inside
    ``build`` leaves only the temporary folder, which is removed here or by the next call.
    """
    final = Path(final)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*{TMP_SUFFIX}"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=TMP_SUFFIX, dir=final.parent))
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():  # somebody else finished first: theirs is as good as ours
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
