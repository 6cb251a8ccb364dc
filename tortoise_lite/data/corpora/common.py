"""What the embedded corpora share: cache location, atomic generation, the ``Corpus`` record."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tortoise_lite.data.cache import build_dir_atomically, default_cache_root, settings_hash
from tortoise_lite.data.manifest import Item, read_jsonl


@dataclass(frozen=True)
class Corpus:
    """A generated corpus folder: ``manifest.jsonl`` (JSONL manifest), ``heldout.txt`` (evaluation
    prompts never used for training, one per line), ``settings.json``, ``wavs/`` and ``durations/``;
    multi-voice corpora add ``heldout_voices.jsonl`` (items of voices never used for training)."""

    name: str
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    def items(self) -> list[Item]:
        return read_jsonl(self.manifest)

    def heldout_prompts(self) -> list[str]:
        return [line for line in (self.root / "heldout.txt").read_text(encoding="utf-8").splitlines() if line]

    def heldout_voice_items(self) -> list[Item]:
        """Clips of voices never trained on (``heldout_voices.jsonl``, absolute paths like ``items()``):
        references and ground truth for zero-shot voice tests. Empty for corpora without held-out voices."""
        path = self.root / "heldout_voices.jsonl"
        return read_jsonl(path) if path.is_file() else []

    def voice_table(self) -> dict:
        """``{voice: {"pitch", "rate", "heldout"}}`` for multi-voice corpora (empty otherwise)."""
        return dict(self.settings.get("voice_table", {}))

    @property
    def settings(self) -> dict:
        return json.loads((self.root / "settings.json").read_text())


def corpus_dir(name: str, settings: dict, cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache_dir or ~/.cache/tortoise_lite/corpora>/<name>-<hash of settings>``."""
    base = Path(cache_dir).expanduser() if cache_dir else default_cache_root() / "corpora"
    return base / f"{name}-{settings_hash(settings)}"


def generate_once(name: str, settings: dict, cache_dir, build: Callable[[Path], None]) -> Corpus:
    """Generate into a temp folder and rename, unless the corpus already exists (then reuse it)."""
    final = corpus_dir(name, settings, cache_dir)
    return Corpus(name, build_dir_atomically(final, build))
