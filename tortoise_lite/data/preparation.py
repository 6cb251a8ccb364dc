"""Validate a manifest, cache its mels, compute normalization statistics, report what was skipped.

Layout under ``out_dir`` (all writes atomic, so an interrupted run resumes where it stopped)::

    mels/<MelSpec.key>/<h[:2]>/<h>.npy    log-mel (n_mels, T) float32, h = sha256 of the audio file bytes
    mels/<MelSpec.key>/<h[:2]>/<h>.json   what validation needs without reloading audio (samples, peak, rms)
    <MelSpec.key>-<tokenizer hash>/       one prepared view of the dataset:
        items.jsonl   good items (id, text, speaker, mel path, frames, tokens, durations path)
        stats.json    MelStats of the good mels
        report.json / report.txt   skipped items with reason code and message
        meta.json     MelSpec, tokenizer, limits, counts (written last: marks the view complete)

Keying mels by the MelSpec hash means changing any mel setting never reuses a stale mel; keying by the
audio content hash means editing a wav in place is noticed.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tortoise_lite.audio import AudioError, MelSpec, MelStats, load_audio
from tortoise_lite.data.cache import (
    atomic_save_npy,
    atomic_write_json,
    atomic_write_text,
    file_hash,
    load_npy,
    remove_stale_temps,
    settings_hash,
)
from tortoise_lite.data.manifest import Item
from tortoise_lite.text.tokenizers import Tokenizer, UnknownSymbolError

# Reason codes written to the report (one per skipped item: the first problem found).
REASONS = {
    "empty_text": "the transcript is empty",
    "unknown_symbols": "the transcript has symbols outside the tokenizer's vocabulary",
    "missing": "the audio file does not exist",
    "empty_file": "the audio file is empty (0 bytes)",
    "truncated": "the wav file is shorter than its header says (truncated copy or download)",
    "unreadable": "the audio file cannot be decoded (corrupt or not audio)",
    "non_finite": "the audio contains NaN or infinite samples",
    "silent": "the audio is silent",
    "too_short": "the audio is shorter than min_seconds",
    "too_long": "the audio is longer than max_seconds",
    "bad_durations": "the durations file does not match the tokens or the mel length",
}
VERSION = 1


class PrepareError(RuntimeError):
    """The dataset as a whole cannot be prepared (e.g. no usable item)."""


@dataclass
class PrepareLimits:
    """What counts as usable audio. ``silence_dbfs``: peak level (dB re full scale) below which an item
    is silent.

    Conditioning of real recordings (all off by default; the embedded corpora need none of it):

    - ``trim_db``: trim leading/trailing audio quieter than this many dB below the clip's loudest
      frame (librosa.effects.trim), keeping ``trim_margin_s`` seconds either side.
    - ``loudness_dbfs``: scale each clip (after trimming) to this RMS level (dB re full scale), peaks
      limited to -1 dBFS, so that speakers recorded at different levels share one scale.
    - ``std_floor``: lower bound on the per-bin standard deviation of the normalization statistics
      (log-mel units). Bins that a source never fills (above 4 kHz for 8 kHz recordings) have a tiny std;
      dividing by it turns rare leakage into huge normalized values. 1.0 is below every speech bin's std.

    The silence check uses the raw clip's peak (a silent clip is never amplified into the data).
    """

    min_seconds: float = 0.2
    max_seconds: float = 20.0
    silence_dbfs: float = -50.0
    trim_db: float | None = None
    trim_margin_s: float = 0.05
    loudness_dbfs: float | None = None
    std_floor: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_seconds < self.max_seconds:
            raise ValueError(
                f"need 0 <= min_seconds < max_seconds, got {self.min_seconds}, {self.max_seconds}"
            )
        if self.trim_db is not None and not self.trim_db > 0:
            raise ValueError(f"trim_db={self.trim_db} must be > 0 dB (or null: no trimming)")
        if self.trim_margin_s < 0:
            raise ValueError(f"trim_margin_s={self.trim_margin_s} must be >= 0")
        if self.loudness_dbfs is not None and not self.loudness_dbfs < 0:
            raise ValueError(f"loudness_dbfs={self.loudness_dbfs} must be < 0 dBFS (or null: levels kept)")
        if self.std_floor is not None and not self.std_floor > 0:
            raise ValueError(f"std_floor={self.std_floor} must be > 0 (or null: 1e-3)")

    def conditioning(self) -> dict[str, float] | None:
        """The settings that change the cached mels (None when the audio is used as it is)."""
        if self.trim_db is None and self.loudness_dbfs is None:
            return None
        return {
            "trim_db": self.trim_db,
            "trim_margin_s": self.trim_margin_s,
            "loudness_dbfs": self.loudness_dbfs,
        }


def condition_audio(wav: torch.Tensor, sample_rate: int, limits: PrepareLimits) -> torch.Tensor:
    """Trim leading/trailing silence and normalize the level as ``limits`` says (see PrepareLimits)."""
    x = wav.numpy()
    if limits.trim_db is not None and x.size:
        import librosa

        hop = max(1, sample_rate // 100)  # 10 ms frames
        _, (start, end) = librosa.effects.trim(x, top_db=limits.trim_db, frame_length=4 * hop, hop_length=hop)
        margin = int(round(limits.trim_margin_s * sample_rate))
        x = x[max(0, start - margin) : min(x.size, end + margin)]
    if limits.loudness_dbfs is not None and x.size:
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        peak = float(np.max(np.abs(x)))
        if rms > 0:
            gain = min(10 ** (limits.loudness_dbfs / 20) / rms, 10 ** (-1 / 20) / peak)
            x = x * gain
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


@dataclass
class Skipped:
    id: str
    audio: str
    reason: str
    message: str


@dataclass
class Entry:
    """A prepared (good) item. ``mel`` and ``durations`` are paths relative to the prepare folder."""

    id: str
    text: str
    mel: str
    frames: int
    tokens: list[int]
    speaker: str | None = None
    durations: str | None = None


@dataclass
class PreparedDataset:
    """A complete prepared view: entries, MelStats, speakers, report; load it with ``PreparedDataset.load``."""

    root: Path  # the ``out_dir`` (mel paths are relative to it)
    view: Path  # ``out_dir/<mel key>-<tokenizer hash>``
    mel_spec: MelSpec
    tokenizer: dict[str, Any]
    entries: list[Entry]
    stats: MelStats
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        names = sorted({e.speaker for e in self.entries if e.speaker is not None})
        return names

    def mel_path(self, entry: Entry) -> Path:
        return self.root / entry.mel

    def durations_path(self, entry: Entry) -> Path | None:
        return None if entry.durations is None else Path(entry.durations)

    @classmethod
    def load(cls, view: str | os.PathLike) -> PreparedDataset:
        view = Path(view)
        meta_path = view / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{view}: not a complete prepared dataset (no meta.json); run prepare again"
            )
        meta = json.loads(meta_path.read_text())
        entries = [
            Entry(**json.loads(line)) for line in (view / "items.jsonl").read_text().splitlines() if line
        ]
        report = json.loads((view / "report.json").read_text())
        return cls(
            root=view.parent,
            view=view,
            mel_spec=MelSpec.from_dict(meta["mel"]),
            tokenizer=meta["tokenizer"],
            entries=entries,
            stats=MelStats.load(view / "stats.json"),
            skipped=[Skipped(**s) for s in report["skipped"]],
        )


def _check_wav_header(path: Path) -> str | None:
    """A message when a RIFF/WAVE file's data chunk claims more bytes than the file holds."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None  # not a RIFF wave: soundfile decides (and reports) what it is
        fmt = "<I" if head[:4] == b"RIFF" else ">I"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            cid, clen = chunk[:4], struct.unpack(fmt, chunk[4:8])[0]
            if cid == b"data":
                available = size - (pos + 8)
                # 0 and 0xFFFFFFFF mean "unknown length" (streamed writers): not a truncation.
                if clen not in (0, 0xFFFFFFFF) and clen > available:
                    return f"header declares {clen} bytes of audio data but the file holds only {available}"
                return None
            pos += 8 + clen + (clen & 1)
        return "no 'data' chunk before the end of the file"


def _audio_problem(path: Path) -> tuple[str, str] | None:
    if not path.exists():
        return "missing", f"{path}: no such file"
    if path.stat().st_size == 0:
        return "empty_file", f"{path}: the file is empty (0 bytes)"
    if path.suffix.lower() == ".wav":
        msg = _check_wav_header(path)
        if msg:
            return "truncated", f"{path}: {msg}"
    return None


def _mel_cache_paths(
    root: Path, mel: MelSpec, content: str, limits: PrepareLimits | None = None
) -> tuple[Path, Path]:
    conditioning = limits.conditioning() if limits is not None else None
    key = mel.key if conditioning is None else f"{mel.key}-{settings_hash(conditioning)}"
    folder = root / "mels" / key / content[:2]
    return folder / f"{content}.npy", folder / f"{content}.json"


def _compute_mel(
    path: Path, mel: MelSpec, npy: Path, info_path: Path, limits: PrepareLimits | None = None
) -> dict:
    """Load, convert (rate/channels/bit depth via load_audio) and cache one mel; returns its info."""
    wav = load_audio(path, mel.sample_rate)
    raw_peak = float(wav.abs().max()) if wav.numel() else 0.0
    if (
        limits is not None
        and limits.conditioning() is not None
        and raw_peak >= 10 ** (limits.silence_dbfs / 20)
    ):
        wav = condition_audio(wav, mel.sample_rate, limits)
    n = int(wav.numel())
    peak = raw_peak  # the silence check is on the recording as it was
    rms = float(wav.pow(2).mean().sqrt()) if n else 0.0
    frames = mel.num_frames(n) if n else 0
    info = {"samples": n, "peak": peak, "rms": rms, "frames": max(frames, 0), "sample_rate": mel.sample_rate}
    if frames > 0:
        m = mel(wav).numpy().astype(np.float32)
        if not np.all(np.isfinite(m)):
            raise AudioError(f"{path}: the mel spectrogram has NaN or infinite values")
        # The info file goes first: an entry counts only once its .npy exists (written last).
        atomic_write_json(info_path, info)
        atomic_save_npy(npy, m)
    return info


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def view_dir(out_dir: str | os.PathLike, mel: MelSpec, tokenizer: Tokenizer) -> Path:
    return Path(out_dir) / f"{mel.key}-{settings_hash(tokenizer.to_dict())}"


def prepare_dataset(
    items: list[Item],
    mel: MelSpec,
    tokenizer: Tokenizer,
    out_dir: str | os.PathLike,
    limits: PrepareLimits | None = None,
    progress: bool = True,
    per_bin_stats: bool = True,
) -> PreparedDataset:
    """Validate every item, cache mels, compute MelStats and write the report; see the module doc.

    Each bad item is reported once (its first problem) and skipped; odd-but-valid audio (8/24-bit,
    float, stereo, other rates) is converted by ``load_audio``. Returns the ``PreparedDataset``.
    """
    limits = limits or PrepareLimits()
    root = Path(out_dir).expanduser().resolve()
    view = view_dir(root, mel, tokenizer)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root)
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    seen_ids: set[str] = set()
    dropped_durations = 0
    silence_peak = 10 ** (limits.silence_dbfs / 20)

    def skip(item: Item, reason: str, message: str) -> None:
        skipped.append(Skipped(item.id, item.audio, reason, message))

    with _progress(progress) as bar:
        task = bar.add_task("prepare", total=len(items))
        for item in items:
            bar.advance(task)
            if item.id in seen_ids:
                raise PrepareError(f"duplicate item id {item.id!r} ({item.audio}); ids must be unique")
            seen_ids.add(item.id)
            if not item.text.strip():
                skip(item, "empty_text", f"{item.id}: empty transcript for {item.audio}")
                continue
            try:
                tokens = tokenizer.encode(item.text)
            except UnknownSymbolError as e:
                skip(item, "unknown_symbols", f"{item.id}: {e}")
                continue
            if not tokens:
                skip(item, "empty_text", f"{item.id}: the transcript {item.text!r} has no tokens")
                continue
            path = Path(item.audio)
            problem = _audio_problem(path)
            if problem:
                skip(item, *problem)
                continue
            content = file_hash(path)
            npy, info_path = _mel_cache_paths(root, mel, content, limits)
            try:
                if npy.is_file() and info_path.is_file():
                    info = json.loads(info_path.read_text())
                else:
                    info = _compute_mel(path, mel, npy, info_path, limits)
            except AudioError as e:
                reason = "non_finite" if ("NaN" in str(e) or "infinite" in str(e)) else "unreadable"
                skip(item, reason, str(e))
                continue
            seconds = info["samples"] / mel.sample_rate
            if info["peak"] < silence_peak:
                peak_db = 20 * math.log10(info["peak"]) if info["peak"] > 0 else float("-inf")
                skip(
                    item,
                    "silent",
                    f"{path}: peak level {peak_db:.1f} dBFS is below {limits.silence_dbfs} dBFS",
                )
                continue
            if seconds < limits.min_seconds or info["frames"] <= 0:
                skip(
                    item,
                    "too_short",
                    f"{path}: {seconds:.3f} s is shorter than min_seconds={limits.min_seconds}",
                )
                continue
            if seconds > limits.max_seconds:
                skip(
                    item,
                    "too_long",
                    f"{path}: {seconds:.2f} s is longer than max_seconds={limits.max_seconds}",
                )
                continue
            durations = None
            if item.durations is not None:
                msg = _check_durations(Path(item.durations), len(tokens), info["frames"])
                if msg == _OTHER_TOKENIZER:
                    # Durations made for another tokenizer (e.g. phoneme timings with text=chars): the item is
                    # good, its alignment is learned instead (MAS), so keep it without durations.
                    dropped_durations += 1
                elif msg:
                    skip(item, "bad_durations", f"{item.id}: {msg}")
                    continue
                else:
                    durations = str(Path(item.durations).resolve())
            entries.append(
                Entry(
                    id=item.id,
                    text=item.text,
                    mel=str(npy.relative_to(root)),
                    frames=int(info["frames"]),
                    tokens=tokens,
                    speaker=item.speaker,
                    durations=durations,
                )
            )

    if not entries:
        _write_report(view, skipped, len(items))
        raise PrepareError(
            f"no usable item among {len(items)}; see {view / 'report.txt'} for the reason of each skip"
        )
    stats = MelStats.from_mels(
        (torch.from_numpy(load_npy(root / e.mel)) for e in entries),
        per_bin=per_bin_stats,
        min_std=1e-3 if limits.std_floor is None else float(limits.std_floor),
    )
    view.mkdir(parents=True, exist_ok=True)
    (view / "meta.json").unlink(missing_ok=True)  # the view is incomplete until meta.json is rewritten
    atomic_write_text(view / "items.jsonl", "".join(json.dumps(asdict(e)) + "\n" for e in entries))
    stats.save(view / "stats.json")
    _write_report(view, skipped, len(items))
    atomic_write_json(
        view / "meta.json",
        {
            "version": VERSION,
            "mel": mel.to_dict(),
            "tokenizer": tokenizer.to_dict(),
            "limits": asdict(limits),
            "n_items": len(items),
            "n_good": len(entries),
            "n_skipped": len(skipped),
            # items whose durations belong to another tokenizer: kept, aligned by MAS instead
            "n_without_durations": dropped_durations,
            "total_frames": sum(e.frames for e in entries),
        },
    )
    return PreparedDataset(root, view, mel, tokenizer.to_dict(), entries, stats, skipped)


_OTHER_TOKENIZER = "durations made for another tokenizer"


def _check_durations(path: Path, n_tokens: int, n_frames: int) -> str | None:
    if not path.is_file():
        return f"durations file {path} not found"
    try:
        d = load_npy(path)
    except Exception as e:  # numpy raises ValueError/OSError/EOFError for damaged files
        return f"durations file {path} is unreadable ({e})"
    if d.ndim != 1 or not np.issubdtype(d.dtype, np.integer):
        return f"durations file {path} must hold a 1-D integer array, got {d.dtype} {d.shape}"
    if len(d) != n_tokens:
        return _OTHER_TOKENIZER
    if (d < 0).any() or int(d.sum()) != n_frames:
        return f"durations file {path} sums to {int(d.sum())} frames but the mel has {n_frames} (or has negatives)"
    return None


def _write_report(view: Path, skipped: list[Skipped], n_items: int) -> None:
    counts: dict[str, int] = {}
    for s in skipped:
        counts[s.reason] = counts.get(s.reason, 0) + 1
    atomic_write_json(
        view / "report.json",
        {
            "n_items": n_items,
            "n_skipped": len(skipped),
            "counts": counts,
            "skipped": [asdict(s) for s in skipped],
        },
    )
    lines = [
        f"prepare report: {n_items - len(skipped)} of {n_items} items usable, {len(skipped)} skipped",
        "",
    ]
    for reason, n in sorted(counts.items()):
        lines.append(f"  {reason:16s} {n:6d}  ({REASONS[reason]})")
    if skipped:
        lines += ["", "skipped items:"]
        lines += [f"  [{s.reason}] {s.id}: {s.message}" for s in skipped]
    atomic_write_text(view / "report.txt", "\n".join(lines) + "\n")
