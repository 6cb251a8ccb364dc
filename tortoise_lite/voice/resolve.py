"""What ``voice=`` names, turned into a latent: :func:`resolve_voice`.

A string is one voice or a blend ``a+b`` (the mean of the parts' latents, Tortoise's ``voice=a+b``). Each
part is, in this order:

1. an existing path: a ``.pt`` latent file, an audio file, or a folder of clips;
2. a name in ``voices_dir``: the folder ``voices_dir/<name>/`` of clips, else the latent ``voices_dir/<name>.pt``;
3. a trained voice of the checkpoint (``CheckpointInfo.voice_references``, e.g. ``en-us+f3``).

eSpeak voice names contain ``+`` (``en-us+f3``): a whole string that names a voice is never split, and a
blend is split at the ``+`` signs where the parts name voices (``en-us+f3+alice`` = ``en-us+f3`` and
``alice``). A list of paths is one voice from all those clips (or a list of ``(wav, sample_rate)``
pairs); a tensor is a latent (voice_dim,) (or one per item, (B, voice_dim)).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tortoise_lite.models.reference import MIN_REFERENCE_FRAMES
from tortoise_lite.voice.clips import (
    AUDIO_EXTENSIONS,
    DEFAULT_REFERENCE_FRAMES,
    VoiceError,
    load_clips,
)
from tortoise_lite.voice.latents import load_latent, require_voice_model, unwrap


@dataclass
class Voice:
    """A resolved voice: ``latent`` (voice_dim,) (or (B, voice_dim) given as a tensor), what it came from,
    the clips used (names), their seconds of audio (after trimming) and windows."""

    latent: Tensor
    description: str
    clips: list[str] = field(default_factory=list)
    seconds: float = 0.0
    windows: int = 0


def list_voices_dir(voices_dir: str | os.PathLike | None) -> list[str]:
    """Voice names in ``voices_dir``: its sub-folders (``<name>/*.wav``) and latents (``<name>.pt``)."""
    if not voices_dir:
        return []
    root = Path(voices_dir).expanduser()
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    names += [p.stem for p in root.glob("*.pt")]
    return sorted(set(names))


def trained_voices(model: Any, info: Any = None) -> list[str]:
    """Names of the voices a voice model was trained on (empty for other models)."""
    tm, own = unwrap(model)
    info = info if info is not None else own
    if int(getattr(tm, "voice_dim", 0) or 0) <= 0 or info is None:
        return []
    return list(getattr(info, "voice_references", None) or getattr(info, "voices", None) or [])


def reference_frames(info: Any) -> int:
    """The checkpoint's training reference window (``data.reference_frames``), default 192 frames."""
    data = (getattr(info, "config", None) or {}).get("data") or {}
    return int(data.get("reference_frames") or DEFAULT_REFERENCE_FRAMES)


def training_loudness(info: Any) -> float | None:
    """The RMS level ``prepare`` brought the training audio to (``data.limits.loudness_dbfs``), or None."""
    data = (getattr(info, "config", None) or {}).get("data") or {}
    level = (data.get("limits") or {}).get("loudness_dbfs")
    return None if level is None else float(level)


def voice_from_clips(model: Any, clips: Any, info: Any = None, description: str | None = None) -> Voice:
    """One voice from reference clips (see :func:`tortoise_lite.voice.clips.load_clips`)."""
    tm, own = unwrap(model)
    info = info if info is not None else own
    tm = require_voice_model(tm, info)
    refs = load_clips(clips, tm.mel_spec, reference_frames(info), loudness_dbfs=training_loudness(info))
    windows = [w for c in refs for w in c.windows]
    names = [c.name for c in refs]
    return Voice(
        latent=tm.voice_latent(windows),
        description=description or (names[0] if len(names) == 1 else f"{len(names)} clips"),
        clips=names,
        seconds=sum(c.seconds for c in refs),
        windows=len(windows),
    )


class _Resolver:
    def __init__(self, model: Any, info: Any, voices_dir: Any) -> None:
        self.tm = model
        self.info = info
        self.voices_dir = Path(voices_dir).expanduser() if voices_dir else None
        self.trained = {str(k): v for k, v in (getattr(info, "voice_references", None) or {}).items()}

    def _in_dir(self, name: str) -> Path | None:
        if self.voices_dir is None or not name or "/" in name or name.startswith("."):
            return None
        folder, latent = self.voices_dir / name, self.voices_dir / f"{name}.pt"
        return folder if folder.is_dir() else latent if latent.is_file() else None

    def known(self, part: str) -> bool:
        return bool(part) and (
            Path(part).expanduser().exists() or self._in_dir(part) is not None or part in self.trained
        )

    def split(self, spec: str) -> list[str] | None:
        """``spec`` as voice parts: whole if it names a voice, else split at a ``+`` (longest first part)."""
        if self.known(spec):
            return [spec]
        cuts = [i for i, ch in enumerate(spec) if ch == "+"]
        for i in reversed(cuts):
            if self.known(spec[:i]):
                rest = self.split(spec[i + 1 :])
                if rest is not None:
                    return [spec[:i], *rest]
        return None

    def path_voice(self, p: Path, label: str) -> Voice:
        if p.is_file() and p.suffix.lower() == ".pt":
            return Voice(load_latent(p, self.tm, self.info), label)
        return voice_from_clips(self.tm, [p], self.info, description=label)

    def part(self, name: str) -> Voice:
        p = Path(name).expanduser()
        if p.exists():
            return self.path_voice(p, name)
        found = self._in_dir(name)
        if found is not None:
            return self.path_voice(found, name)
        return self.trained_voice(name)

    def trained_voice(self, name: str) -> Voice:
        clips = [c for c in self.trained[name] if c.shape[-1] >= MIN_REFERENCE_FRAMES]
        if not clips:
            raise VoiceError(f"trained voice {name!r} has no stored reference clip long enough to use")
        return Voice(self.tm.voice_latent(clips), f"{name} (trained)")

    def unknown(self, spec: str) -> VoiceError:
        listed = ", ".join(list_voices_dir(self.voices_dir)) or "none"
        where = (
            f"voices in voices_dir={self.voices_dir}: {listed}" if self.voices_dir else "no voices_dir= given"
        )
        trained = ", ".join(self.trained) or "none"
        looks_like_path = (
            "/" in spec or os.sep in spec or Path(spec).suffix.lower() in (*AUDIO_EXTENSIONS, ".pt")
        )
        what = (
            "no such file or folder, and not a voice name"
            if looks_like_path
            else "not a file, a folder or a voice name"
        )
        return VoiceError(f"unknown voice {spec!r}: {what}; {where}; trained voices: {trained}")

    def string(self, spec: str) -> Voice:
        spec = spec.strip()
        parts = self.split(spec)
        if not parts:
            raise self.unknown(spec)
        voices = [self.part(p) for p in parts]
        if len(voices) == 1:
            return voices[0]
        return Voice(
            latent=torch.stack([v.latent for v in voices]).mean(0),
            description="+".join(v.description for v in voices),
            clips=[c for v in voices for c in v.clips],
            seconds=sum(v.seconds for v in voices),
            windows=sum(v.windows for v in voices),
        )


def resolve_name(
    name: str, model: Any, info: Any = None, voices_dir: str | os.PathLike | None = None
) -> Voice:
    """A voice by name only (no path lookup, no blend): ``voices_dir/<name>`` first, then a trained voice
    (what a page's voice list offers)."""
    tm, own = unwrap(model)
    info = info if info is not None else own
    r = _Resolver(require_voice_model(tm, info), info, voices_dir)
    found = r._in_dir(name)
    if found is not None:
        return r.path_voice(found, name)
    if name in r.trained:
        return r.trained_voice(name)
    raise r.unknown(name)


def _is_pair(x: Any) -> bool:
    return (
        isinstance(x, tuple)
        and len(x) == 2
        and not isinstance(x[0], (str, os.PathLike))
        and isinstance(x[1], (int, float))
    )


def resolve_voice(
    voice: Any, model: Any, info: Any = None, voices_dir: str | os.PathLike | None = None
) -> Voice | None:
    """``voice=`` (see the module doc) -> a :class:`Voice`, or None for None (the model's average voice).

    ``model``: a TextToMel (with ``info``, its CheckpointInfo, for trained voices and messages) or a
    TextToSpeech. Every problem is a one-line :class:`VoiceError`."""
    if voice is None:
        return None
    if isinstance(voice, Voice):
        return voice
    tm, own = unwrap(model)
    info = info if info is not None else own
    tm = require_voice_model(tm, info)
    if isinstance(voice, Tensor):
        if voice.ndim not in (1, 2) or voice.shape[-1] != tm.voice_dim:
            raise VoiceError(
                f"voice latent shaped {tuple(voice.shape)}; this checkpoint takes ({tm.voice_dim},) or "
                f"(B, {tm.voice_dim}) latents (voice_dim={tm.voice_dim})"
            )
        return Voice(voice.detach().to(tm.device, torch.float32), "latent")
    if isinstance(voice, os.PathLike):
        voice = os.fspath(voice)
    if isinstance(voice, str):
        return _Resolver(tm, info, voices_dir).string(voice)
    if _is_pair(voice):
        voice = [voice]
    if isinstance(voice, (list, tuple)):
        return voice_from_clips(tm, list(voice), info)
    raise VoiceError(
        f"voice is a {type(voice).__name__}; give a path, a voice name (a+b blends), a list of clips or a latent"
    )
