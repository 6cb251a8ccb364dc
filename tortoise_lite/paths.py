"""Where the package's Hydra configs, recipes and caches live, in a source checkout and in an installed wheel."""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists; reinstall tortoise_lite")


def config_dir() -> Path:
    """The Hydra config root: ``tortoise_lite/conf`` in a wheel, ``conf/`` in a source checkout."""
    return _first_existing(_PKG / "conf", _PKG.parent / "conf")


def recipes_dir() -> Path:
    return _first_existing(_PKG / "recipes", _PKG.parent / "recipes")


def cache_dir() -> Path:
    """Root for generated corpora and mel caches (``$TORTOISE_LITE_CACHE`` or ``~/.cache/tortoise_lite``)."""
    return Path(os.environ.get("TORTOISE_LITE_CACHE", Path.home() / ".cache" / "tortoise_lite")).expanduser()
