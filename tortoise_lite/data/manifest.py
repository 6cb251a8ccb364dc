"""Manifests: LJSpeech layout, a folder of ``*.wav`` + same-stem ``*.txt``, or a JSONL file.

Every reader returns a list of ``Item`` records (id, audio path, text, speaker, optional durations path).
Readers do not open the audio: ``prepare`` validates every item and reports the bad ones.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


class ManifestError(ValueError):
    """A manifest (metadata.csv, folder, JSONL) could not be read; the message names the file and line."""


@dataclass(frozen=True)
class Item:
    """One utterance: ``audio`` absolute path, transcript ``text``, optional ``speaker`` name,
    optional ``durations`` path (``.npy`` int frames per token) and ``duration`` seconds from the manifest."""

    id: str
    audio: str
    text: str
    speaker: str | None = None
    durations: str | None = None
    duration: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def read_ljspeech(root: str | os.PathLike, use_normalized: bool = True) -> list[Item]:
    """LJSpeech layout: ``root/metadata.csv`` (``id|text|normalized text``) and ``root/wavs/<id>.wav``.

    The normalized column is used when present and non-empty (``use_normalized``), else the raw text.
    """
    root = Path(root)
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise ManifestError(
            f"{meta}: not found; an LJSpeech-style root holds metadata.csv (id|text|normalized) and wavs/"
        )
    items = []
    with open(meta, encoding="utf-8", newline="") as f:
        # LJSpeech texts contain quotes: no quoting, '|' separated.
        for lineno, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise ManifestError(
                    f"{meta}:{lineno}: expected 'id|text|normalized text', got {'|'.join(row)!r}"
                )
            uid = row[0].strip()
            text = row[2] if use_normalized and len(row) > 2 and row[2].strip() else row[1]
            items.append(Item(id=uid, audio=str((root / "wavs" / f"{uid}.wav").resolve()), text=text.strip()))
    return items


def read_folder(path: str | os.PathLike) -> list[Item]:
    """A folder of audio files, each with a same-stem ``.txt`` transcript (searched recursively).

    An audio file without a transcript is kept with empty text so that prepare reports it.
    Speaker = the sub-folder name relative to ``path`` when files live in sub-folders.
    """
    path = Path(path)
    if not path.is_dir():
        raise ManifestError(f"{path}: not a folder; expected a folder of *.wav files with same-stem *.txt")
    items = []
    for audio in sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        txt = audio.with_suffix(".txt")
        text = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else ""
        rel = audio.relative_to(path)
        speaker = rel.parts[0] if len(rel.parts) > 1 else None
        uid = str(rel.with_suffix("")).replace(os.sep, "/")
        items.append(Item(id=uid, audio=str(audio.resolve()), text=text, speaker=speaker))
    if not items:
        raise ManifestError(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return items


def read_jsonl(path: str | os.PathLike) -> list[Item]:
    """JSONL: one object per line with ``audio`` and ``text``, optional ``id``, ``speaker``,
    ``duration`` (seconds) and ``durations`` (``.npy`` of frames per token). Relative paths are
    relative to the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: JSONL manifest not found")
    base = path.parent
    items = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(rec, dict) or "audio" not in rec or "text" not in rec:
                raise ManifestError(
                    f"{path}:{lineno}: each line needs 'audio' and 'text' fields, got {line.strip()!r}"
                )
            audio = Path(rec["audio"])
            audio = audio if audio.is_absolute() else base / audio
            uid = str(rec.get("id") or Path(rec["audio"]).with_suffix("").as_posix())
            if uid in seen:
                raise ManifestError(f"{path}:{lineno}: duplicate id {uid!r}; ids must be unique")
            seen.add(uid)
            dur_path = rec.get("durations")
            if dur_path is not None:
                dur_path = Path(dur_path)
                dur_path = str((dur_path if dur_path.is_absolute() else base / dur_path).resolve())
            duration = rec.get("duration")
            items.append(
                Item(
                    id=uid,
                    audio=str(audio.resolve()),
                    text=str(rec["text"] or "").strip(),
                    speaker=None if rec.get("speaker") is None else str(rec["speaker"]),
                    durations=dur_path,
                    duration=None if duration is None else float(duration),
                )
            )
    return items


def write_jsonl(path: str | os.PathLike, items: list[Item]) -> Path:
    """Write items as a JSONL manifest (atomic)."""
    from tortoise_lite.data.cache import atomic_write_text

    return atomic_write_text(
        path, "".join(json.dumps(it.to_dict(), ensure_ascii=False) + "\n" for it in items)
    )


def load_manifest(source: str | os.PathLike, kind: str = "auto") -> list[Item]:
    """Read ``source`` as ``kind`` = ``ljspeech`` | ``folder`` | ``jsonl`` | ``auto`` (by what is there)."""
    source = Path(source).expanduser()
    if kind == "auto":
        if source.is_file() and source.suffix.lower() in (".jsonl", ".json"):
            kind = "jsonl"
        elif source.is_dir() and (source / "metadata.csv").is_file():
            kind = "ljspeech"
        elif source.is_dir():
            kind = "folder"
        else:
            raise ManifestError(
                f"{source}: not found or not a dataset; give an LJSpeech root (metadata.csv + wavs/), "
                "a folder of *.wav + *.txt, or a .jsonl manifest"
            )
    readers = {"ljspeech": read_ljspeech, "folder": read_folder, "jsonl": read_jsonl}
    if kind not in readers:
        raise ManifestError(f"unknown manifest kind {kind!r}; choose one of {sorted(readers)} or 'auto'")
    return readers[kind](source)
