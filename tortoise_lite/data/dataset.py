"""Dataset over a prepared view and the collate function that builds a ``Batch``."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from tortoise_lite.data.batch import Batch
from tortoise_lite.data.cache import load_npy
from tortoise_lite.data.preparation import Entry, PreparedDataset


class MelDataset(Dataset):
    """Items of a ``PreparedDataset`` (optionally a subset of its entries, by index).

    ``__getitem__`` returns a dict: ``id``, ``text``, ``mel`` (n_mels, T) float32 raw log-mel, ``tokens``
    (L,) long, ``durations`` (L,) long or None, ``speaker`` int or None, and with ``references > 0``
    ``refs``: a list of up to ``references`` raw log-mels (n_mels, <= reference_frames) cut from OTHER
    utterances of the item's speaker (from ``reference_pool``, entry indices; default: this subset), the
    clips and windows drawn from a generator seeded by (``seed``, item id): the same for an item every time,
    in every process. An item whose speaker has no other utterance gets a window of itself.
    """

    def __init__(
        self,
        prepared: PreparedDataset,
        indices: Sequence[int] | None = None,
        use_durations: bool = True,
        speakers: Sequence[str] | None = None,
        references: int = 0,
        reference_frames: int = 192,
        reference_pool: Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        self.prepared = prepared
        self.indices = list(range(len(prepared.entries))) if indices is None else list(indices)
        self.use_durations = use_durations
        self.speakers = list(prepared.speakers if speakers is None else speakers)
        self._speaker_ids = {s: i for i, s in enumerate(self.speakers)}
        self.references = int(references)
        self.reference_frames = int(reference_frames)
        self.seed = int(seed)
        self._by_speaker: dict[str | None, list[int]] = {}
        if self.references > 0:
            pool = self.indices if reference_pool is None else list(reference_pool)
            for j in pool:
                self._by_speaker.setdefault(prepared.entries[j].speaker, []).append(j)
            missing = [self.entry(i).id for i in range(len(self)) if self.entry(i).speaker is None]
            if missing:
                raise ValueError(
                    f"reference clips need a speaker per item; items without one: {missing[:5]} (set the "
                    "manifest's speaker field, or data.references=0)"
                )

    def __len__(self) -> int:
        return len(self.indices)

    def entry(self, i: int) -> Entry:
        return self.prepared.entries[self.indices[i]]

    @property
    def lengths(self) -> list[int]:
        """Mel frames per item (what the bucketing sampler sorts by)."""
        return [self.prepared.entries[j].frames for j in self.indices]

    def _load_mel(self, e: Entry) -> torch.Tensor:
        mel = torch.from_numpy(load_npy(self.prepared.mel_path(e)))
        if mel.shape[-1] != e.frames:
            raise RuntimeError(
                f"{self.prepared.mel_path(e)}: cached mel has {mel.shape[-1]} frames, the index says {e.frames};"
                " the cache was modified, delete it and run prepare again"
            )
        return mel

    def reference_clips(self, i: int) -> list[torch.Tensor]:
        """The reference windows of item ``i`` (see the class doc)."""
        e = self.entry(i)
        rng = random.Random(f"references-{self.seed}-{e.id}")
        others = [j for j in self._by_speaker.get(e.speaker, []) if self.prepared.entries[j].id != e.id]
        chosen = rng.sample(others, min(self.references, len(others))) if others else []
        clips = []
        for j in chosen or [self.indices[i]]:
            ref = self._load_mel(self.prepared.entries[j])
            extra = ref.shape[-1] - self.reference_frames
            start = rng.randint(0, extra) if extra > 0 else 0
            clips.append(ref[:, start : start + self.reference_frames])
        return clips

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = self.entry(i)
        mel = self._load_mel(e)
        durations = None
        if self.use_durations and e.durations is not None:
            durations = torch.from_numpy(load_npy(e.durations).astype("int64"))
        speaker = None
        if e.speaker is not None and self._speaker_ids:
            if e.speaker not in self._speaker_ids:
                raise KeyError(
                    f"speaker {e.speaker!r} of item {e.id} is not in the speaker list {self.speakers}"
                )
            speaker = self._speaker_ids[e.speaker]
        item = {
            "id": e.id,
            "text": e.text,
            "mel": mel,
            "tokens": torch.tensor(e.tokens, dtype=torch.long),
            "durations": durations,
            "speaker": speaker,
        }
        if self.references > 0:
            item["refs"] = self.reference_clips(i)
        return item


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True on real positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class MelCollate:
    """Pads a list of ``MelDataset`` items into a ``Batch``.

    Mels are padded with ``log(log_floor)`` (the value of digital silence under the MelSpec) so padding
    looks like silence even where a mask is forgotten; tokens and durations with 0.
    ``pad_to_multiple``: round T up (U-Nets that downsample time need T divisible by 2**levels).
    """

    def __init__(self, log_floor: float = 1e-5, pad_to_multiple: int = 1) -> None:
        self.mel_pad_value = math.log(log_floor)
        self.pad_to_multiple = max(1, int(pad_to_multiple))

    def __call__(self, items: list[dict[str, Any]]) -> Batch:
        if not items:
            raise ValueError("cannot collate an empty list of items")
        n_mels = items[0]["mel"].shape[0]
        mel_lengths = torch.tensor([it["mel"].shape[1] for it in items], dtype=torch.long)
        tok_lengths = torch.tensor([len(it["tokens"]) for it in items], dtype=torch.long)
        T = int(mel_lengths.max())
        T = -(-T // self.pad_to_multiple) * self.pad_to_multiple
        L = int(tok_lengths.max())
        mel = torch.full((len(items), n_mels, T), self.mel_pad_value, dtype=torch.float32)
        tokens = torch.zeros(len(items), L, dtype=torch.long)
        for b, it in enumerate(items):
            mel[b, :, : it["mel"].shape[1]] = it["mel"]
            tokens[b, : len(it["tokens"])] = it["tokens"]
        durations = None
        if all(it.get("durations") is not None for it in items):
            durations = torch.zeros(len(items), L, dtype=torch.long)
            for b, it in enumerate(items):
                durations[b, : len(it["durations"])] = it["durations"]
        speaker = None
        if all(it.get("speaker") is not None for it in items):
            speaker = torch.tensor([it["speaker"] for it in items], dtype=torch.long)
        ref_mel = ref_lengths = None
        if all(it.get("refs") for it in items):
            K = max(len(it["refs"]) for it in items)
            Tr = max(r.shape[-1] for it in items for r in it["refs"])
            ref_mel = torch.full((len(items), K, n_mels, Tr), self.mel_pad_value, dtype=torch.float32)
            ref_lengths = torch.zeros(len(items), K, dtype=torch.long)
            for b, it in enumerate(items):
                for k, r in enumerate(it["refs"]):
                    ref_mel[b, k, :, : r.shape[-1]] = r
                    ref_lengths[b, k] = r.shape[-1]
        return Batch(
            mel=mel,
            mel_lengths=mel_lengths,
            mel_mask=lengths_to_mask(mel_lengths, T),
            tokens=tokens,
            token_lengths=tok_lengths,
            token_mask=lengths_to_mask(tok_lengths, L),
            durations=durations,
            speaker=speaker,
            ref_mel=ref_mel,
            ref_lengths=ref_lengths,
            texts=[it["text"] for it in items],
            ids=[it["id"] for it in items],
        )
