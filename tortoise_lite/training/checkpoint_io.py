"""Atomic, durable checkpoint files for every Lightning trainer of the toolkit.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction: the bytes go to a temporary file
made by ``tempfile.mkstemp()`` (the system temp folder) and are then moved over the target. When that
folder is on another file system than the checkpoints (a node-local ``/tmp`` and a network ``outputs/``
is the usual cluster layout) the move is a copy, and a kill during the copy leaves a truncated
``last.ckpt``; nothing is fsynced, and a killed save leaves its whole temporary file behind in ``/tmp``.

``AtomicCheckpointIO`` writes ``<name>.tmp`` next to the target, fsyncs it, renames it over the target
(``os.replace``: atomic within a directory) and fsyncs the directory. A kill at any moment leaves either
the previous complete checkpoint or the new complete one; a stale ``.tmp`` from a killed save is
never matches ``*.ckpt`` and is deleted when the run is resumed (``remove_stale_temporaries``). Remote
URLs (``s3://...``) keep Lightning's path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are write-temp + fsync + rename (see the module doc)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint got storage_options={storage_options!r}; "
                "local checkpoints take none"
            )
        if "://" in str(path):  # remote storage: Lightning's fsspec transaction
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, Path(path))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` so that ``path`` is never seen half-written (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``*.ckpt.tmp`` files of saves a kill interrupted (call before training writes any);
    returns what was removed."""
    removed = []
    for tmp in sorted(Path(folder).glob("*.ckpt.tmp")):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable (POSIX); directories cannot be opened this way on Windows.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
