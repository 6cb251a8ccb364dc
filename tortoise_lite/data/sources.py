"""Data sources the configs name: an embedded corpus, an LJSpeech root, a folder or JSONL manifest.

A source knows its items (``items(mel)``), where its prepare outputs go (``prepare_dir``) and, for the
embedded corpora, the held-out prompts evaluation uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tortoise_lite.audio import MelSpec
from tortoise_lite.data.cache import default_cache_root, settings_hash
from tortoise_lite.data.corpora import get_corpus
from tortoise_lite.data.corpora.common import Corpus
from tortoise_lite.data.manifest import Item, load_manifest


class DataSource:
    name: str = "data"

    def items(self, mel: MelSpec) -> list[Item]:
        raise NotImplementedError

    def prepare_dir(self, mel: MelSpec) -> Path:
        raise NotImplementedError

    def heldout_prompts(self, mel: MelSpec) -> list[str]:
        """Evaluation prompts not used for training (empty for user datasets: use the val split)."""
        return []


class CorpusSource(DataSource):
    """An embedded corpus (``synthetic_speech`` or ``tones``) generated on first use.

    ``settings``: keyword arguments of the generator (sizes, seed, voices...); ``cache_dir``: where
    corpora live (default ``~/.cache/tortoise_lite/corpora``).
    """

    def __init__(
        self, name: str, cache_dir: str | None = None, progress: bool = True, **settings: Any
    ) -> None:
        self.name = name
        self.cache_dir = cache_dir
        self.progress = progress
        self.settings = dict(settings)

    def corpus(self, mel: MelSpec) -> Corpus:
        return get_corpus(
            self.name, mel=mel, cache_dir=self.cache_dir, progress=self.progress, **self.settings
        )

    def items(self, mel: MelSpec) -> list[Item]:
        return self.corpus(mel).items()

    def prepare_dir(self, mel: MelSpec) -> Path:
        return self.corpus(mel).root / "prepared"

    def heldout_prompts(self, mel: MelSpec) -> list[str]:
        return self.corpus(mel).heldout_prompts()

    def heldout_voice_items(self, mel: MelSpec) -> list[Item]:
        """Items of voices never trained on (``synthetic_voices``; empty for other corpora)."""
        return self.corpus(mel).heldout_voice_items()


class ManifestSource(DataSource):
    """A dataset on disk: ``kind`` = ``ljspeech`` | ``folder`` | ``jsonl`` | ``auto``.

    Prepare outputs go to ``prepare_dir`` or ``~/.cache/tortoise_lite/prepared/<name>-<hash of path>``.
    """

    def __init__(
        self, path: str, kind: str = "auto", name: str | None = None, prepare_dir: str | None = None
    ):
        if path in (None, "", "???"):
            raise ValueError("the dataset path is not set: pass data.source.path=/path/to/dataset")
        self.path = Path(os.path.expanduser(str(path))).resolve()
        self.kind = kind
        self.name = name or self.path.stem
        self._prepare_dir = prepare_dir

    def items(self, mel: MelSpec) -> list[Item]:
        return load_manifest(self.path, self.kind)

    def prepare_dir(self, mel: MelSpec) -> Path:
        if self._prepare_dir:
            return Path(self._prepare_dir).expanduser()
        return default_cache_root() / "prepared" / f"{self.name}-{settings_hash({'path': str(self.path)})}"


def ljspeech(root: str, prepare_dir: str | None = None) -> ManifestSource:
    """LJSpeech layout at ``root`` (metadata.csv + wavs/)."""
    return ManifestSource(root, kind="ljspeech", name="ljspeech", prepare_dir=prepare_dir)


def folder(path: str, prepare_dir: str | None = None) -> ManifestSource:
    """A folder of wav + same-stem txt, or a ``.jsonl`` manifest (detected from ``path``)."""
    return ManifestSource(path, kind="auto", prepare_dir=prepare_dir)
