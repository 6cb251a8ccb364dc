"""Audio files in and out: anything soundfile reads, mixed to mono and resampled to the MelSpec rate."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch


class AudioError(ValueError):
    """An audio file could not be used; the message names the file and what to do."""


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a file as float32 ``(samples, channels)`` and its native sample rate.

    Integer formats (8/16/24/32-bit) are scaled to [-1, 1] by soundfile.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such audio file; check the path or the manifest entry")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); re-export or remove it")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError by format
        raise AudioError(
            f"{path}: unreadable or corrupt audio ({e}); expected a wav/flac/ogg file that soundfile can open"
        ) from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no samples; re-export or remove it")
    return data, int(sr)


def to_mono(data: np.ndarray) -> np.ndarray:
    """``(samples, channels)`` -> ``(samples,)`` by averaging channels."""
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling (soxr through librosa); identity when the rates match."""
    if orig_sr == target_sr:
        return wav
    return librosa.resample(wav, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    peak_normalize: bool = False,
    peak: float = 0.95,
) -> torch.Tensor:
    """Load any soundfile-readable file as mono float32 ``(S,)`` at ``sample_rate`` (native rate if None).

    Raises ``AudioError`` naming the file for missing, empty, corrupt or non-finite audio.
    """
    data, sr = read_audio(path)
    wav = to_mono(data)
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: contains NaN or infinite samples; the file is damaged, re-export it")
    if sample_rate is not None:
        wav = resample(wav, sr, int(sample_rate))
    if peak_normalize:
        top = float(np.max(np.abs(wav))) if wav.size else 0.0
        if top > 0:
            wav = wav * (peak / top)
    return torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))


def save_wav(
    path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int, subtype: str = "PCM_16"
) -> Path:
    """Write a mono wav atomically (temp file + rename): a killed write never leaves a half file.

    wav: ``(S,)`` float in [-1, 1] (values beyond are clipped by the integer encoder).
    """
    path = Path(path)
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2 and 1 in wav.shape:
        wav = wav.reshape(-1)
    if wav.ndim != 1:
        raise ValueError(f"save_wav expects mono audio shaped (samples,), got {wav.shape} for {path}")
    if not np.all(np.isfinite(wav)):
        raise ValueError(f"refusing to write {path}: the waveform contains NaN or infinite samples")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, np.clip(wav, -1.0, 1.0), int(sample_rate), subtype=subtype, format="WAV")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
