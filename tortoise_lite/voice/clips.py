"""Reference clips -> raw log-mel windows, the way the reference encoder saw them in training.

A clip is read with any sample rate and channel count (channels averaged, resampled to the checkpoint's
MelSpec rate through :mod:`tortoise_lite.audio.io`), its leading and trailing silence trimmed (training
references are corpus utterances, without long pauses around them), and turned into a log-mel by the
checkpoint's MelSpec. A clip longer than the training reference window (``data.reference_frames``, 192
frames ~ 2.2 s at 22.05 kHz) is cut into equal windows of at most that length, so a long recording gives
several windows (Tortoise cuts its clips too); the voice latent is the mean over all windows of all clips.

Every problem is a :class:`VoiceError` (a ``ValueError``) of one line that names the file and says what
to do: a missing path, a folder without audio files, an empty, corrupt or silent file, a clip shorter than
the encoder's minimum after trimming.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tortoise_lite.models.reference import MIN_REFERENCE_FRAMES

#: file endings taken from a folder of reference clips (anything soundfile decodes may be named directly)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
#: trim leading/trailing audio this many dB below the clip's loudest 40 ms frame ...
TRIM_DB = 40.0
#: ... keeping this much either side
TRIM_MARGIN_S = 0.05
#: a clip whose peak is below this level (dB re full scale) is silent (as ``prepare``'s default)
SILENCE_DBFS = -50.0
#: the training reference window when a checkpoint's config does not say (``data.reference_frames``)
DEFAULT_REFERENCE_FRAMES = 192


class VoiceError(ValueError):
    """A voice (clips, a latent file, a name) cannot be used; one line naming the file and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass
class ReferenceClip:
    """One reference clip after reading: ``mel`` (n_mels, T) raw log-mel of the trimmed audio, the
    windows the encoder sees (each (n_mels, <= reference_frames)), and its length in seconds."""

    name: str
    mel: Tensor
    seconds: float
    windows: list[Tensor] = field(default_factory=list)


def min_reference_seconds(mel_spec: Any) -> float:
    """The shortest clip the reference encoder takes, in seconds (``MIN_REFERENCE_FRAMES`` frames)."""
    return MIN_REFERENCE_FRAMES * mel_spec.hop / mel_spec.sample_rate


def find_clips(path: str | os.PathLike) -> list[Path]:
    """The audio files a path names: the file itself, or a folder's audio files (sorted by name)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise VoiceError(
            f"reference {p} does not exist; give a wav file, a folder of wavs, a .pt voice latent or a voice name"
        )
    if p.is_dir():
        files = sorted(
            f
            for f in p.iterdir()
            if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS and not f.name.startswith(".")
        )
        if not files:
            raise VoiceError(
                f"reference folder {p} holds no audio files ({' '.join(AUDIO_EXTENSIONS)}); put a few clips "
                "of the voice speaking in it (a few seconds each)"
            )
        return files
    return [p]


def split_windows(mel: Tensor, reference_frames: int) -> list[Tensor]:
    """(n_mels, T) -> equal windows of at most ``reference_frames`` frames covering the whole clip (one
    window when it fits; never shorter than ``MIN_REFERENCE_FRAMES`` unless the clip itself is)."""
    T = int(mel.shape[-1])
    n = max(1, math.ceil(T / max(1, int(reference_frames))))
    n = max(1, min(n, T // MIN_REFERENCE_FRAMES))
    return [w.contiguous() for w in torch.tensor_split(mel, n, dim=-1)]


def _as_mono(wav: Any, name: str) -> np.ndarray:
    """(S,), (S, C) (soundfile) or (C, S) (torchaudio; the smaller dimension is the channels) -> (S,)."""
    if isinstance(wav, Tensor):
        wav = wav.detach().cpu().numpy()
    x = np.asarray(wav)
    if np.issubdtype(x.dtype, np.integer):  # PCM samples (e.g. int16 from scipy.io.wavfile): scale to [-1, 1]
        x = x / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[0] >= x.shape[1] else x.mean(axis=0)
    if x.ndim != 1:
        raise VoiceError(
            f"reference {name}: expected audio shaped (samples,) or (samples, channels), got {x.shape}"
        )
    if x.size == 0:
        raise VoiceError(f"reference {name} contains no samples; give a recording of the voice speaking")
    if not np.all(np.isfinite(x)):
        raise VoiceError(
            f"reference {name} contains NaN or infinite samples; the file is damaged, re-export it"
        )
    return x


def clip_from_audio(
    wav: Any,
    sample_rate: int,
    mel_spec: Any,
    name: str = "clip",
    reference_frames: int = DEFAULT_REFERENCE_FRAMES,
    trim_db: float | None = TRIM_DB,
    loudness_dbfs: float | None = None,
) -> ReferenceClip:
    """Audio (any rate, mono or multi-channel) -> a :class:`ReferenceClip` for ``mel_spec``.

    ``loudness_dbfs``: bring the trimmed clip to this RMS level, as ``prepare`` levelled the training audio
    (``data.limits.loudness_dbfs`` of the checkpoint): the reference encoder saw its voices at that level only
    (FSDD, a held-out speaker recorded 14 dB quieter: identified 16.7 % unlevelled, 36.7 % levelled)."""
    from tortoise_lite.audio.io import resample
    from tortoise_lite.data.preparation import PrepareLimits, condition_audio

    x = _as_mono(wav, name)
    peak = float(np.max(np.abs(x)))
    if peak <= 10 ** (SILENCE_DBFS / 20):
        level = f"{20 * math.log10(peak):.0f} dBFS" if peak > 0 else "digital silence"
        raise VoiceError(
            f"reference {name} is silent (peak {level}); give a recording in which the voice speaks"
        )
    sr = int(mel_spec.sample_rate)
    x = resample(x, int(sample_rate), sr)
    if trim_db is not None or loudness_dbfs is not None:
        limits = PrepareLimits(
            trim_db=None if trim_db is None else float(trim_db),
            trim_margin_s=TRIM_MARGIN_S,
            loudness_dbfs=None if loudness_dbfs is None else float(loudness_dbfs),
        )
        x = condition_audio(torch.from_numpy(np.ascontiguousarray(x)), sr, limits).numpy()
    seconds = x.size / sr
    frames = mel_spec.num_frames(x.size) if x.size >= mel_spec.n_fft else 0
    if frames < MIN_REFERENCE_FRAMES:
        raise VoiceError(
            f"reference {name} is {seconds:.2f} s ({frames} frames) after trimming silence; the reference "
            f"encoder needs at least {min_reference_seconds(mel_spec):.2f} s ({MIN_REFERENCE_FRAMES} frames at "
            f"hop {mel_spec.hop} / {sr} Hz): give a longer recording (a few seconds of speech)"
        )
    mel = mel_spec(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return ReferenceClip(name, mel, seconds, split_windows(mel, reference_frames))


def load_clip(
    path: str | os.PathLike,
    mel_spec: Any,
    reference_frames: int = DEFAULT_REFERENCE_FRAMES,
    trim_db: float | None = TRIM_DB,
    loudness_dbfs: float | None = None,
) -> ReferenceClip:
    """One audio file -> a :class:`ReferenceClip` (VoiceError naming the file for every bad file)."""
    from tortoise_lite.audio.io import AudioError, read_audio

    p = Path(path).expanduser()
    try:
        data, sr = read_audio(p)
    except AudioError as e:
        raise VoiceError(f"reference clip {e}") from None
    return clip_from_audio(data, sr, mel_spec, str(p), reference_frames, trim_db, loudness_dbfs)


def load_clips(
    clips: Any,
    mel_spec: Any,
    reference_frames: int = DEFAULT_REFERENCE_FRAMES,
    trim_db: float | None = TRIM_DB,
    loudness_dbfs: float | None = None,
) -> list[ReferenceClip]:
    """Reference clips from a folder, a file, a list of paths (files or folders) or a list of
    ``(wav, sample_rate)`` pairs (wav: an array or tensor (samples,) / (samples, channels))."""
    items: Sequence[Any] = [clips] if isinstance(clips, (str, os.PathLike)) else list(clips)
    if not items:
        raise VoiceError(
            "no reference clips given; pass a folder of wavs, wav files, or (wav, sample_rate) pairs"
        )
    out: list[ReferenceClip] = []
    for k, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            out += [
                load_clip(f, mel_spec, reference_frames, trim_db, loudness_dbfs) for f in find_clips(item)
            ]
        elif isinstance(item, (tuple, list)) and len(item) == 2 and np.isscalar(item[1]):
            out.append(
                clip_from_audio(
                    item[0], int(item[1]), mel_spec, f"clip {k}", reference_frames, trim_db, loudness_dbfs
                )
            )
        else:
            raise VoiceError(
                f"reference clip {k} is a {type(item).__name__}; give a path or a (wav, sample_rate) pair"
            )
    return out
