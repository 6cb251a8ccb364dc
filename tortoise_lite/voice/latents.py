"""Voice latents on disk: ``save_latent`` / ``load_latent``.

A latent file (``alice.pt``, written by ``python -m tortoise_lite.voices``) is a plain dictionary that
``torch.load(weights_only=True)`` reads:

==============  ==========================================================================================
key             content
==============  ==========================================================================================
``format``      ``"tortoise_lite.voice"``; ``version``: 1
``latent``      float32 tensor (voice_dim,): the mean of the reference encoder's window latents
``fingerprint`` sha256 of the checkpoint's reference encoder, ``voice_film`` and ``null_voice`` weights
``voice_dim``   the latent's size; ``mel_spec``: the MelSpec (dict) the clips were read with
``clips``       the clip names; ``seconds``: audio used; ``checkpoint``: the checkpoint it was made with
==============  ==========================================================================================

A latent only means something to the reference encoder that made it: loading checks the fingerprint and
refuses a latent of another checkpoint (or of the same run's raw weights when the EMA ones are loaded),
naming both files.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tortoise_lite.voice.clips import VoiceError

FORMAT = "tortoise_lite.voice"
VERSION = 1
#: the weights a latent depends on: what reads the clips and what the latent means to the model
FINGERPRINT_PREFIXES = ("reference_encoder.", "voice_film.", "null_voice")


def unwrap(model: Any) -> tuple[Any, Any]:
    """``(TextToMel, CheckpointInfo | None)`` from a TextToMel or a ``TextToSpeech`` (``.model``, ``.info``)."""
    if hasattr(model, "model") and hasattr(model, "vocode"):
        return model.model, getattr(model, "info", None)
    return model, None


def checkpoint_name(model: Any, info: Any = None) -> str:
    """How messages name the checkpoint of ``model`` (its path when known)."""
    model, own = unwrap(model)
    info = info if info is not None else own
    path = getattr(info, "path", None)
    return f"checkpoint {path}" if path else "this model"


def require_voice_model(model: Any, info: Any = None) -> Any:
    """The TextToMel of ``model``, or a VoiceError when it takes no voice (``voice_dim == 0``)."""
    tm, own = unwrap(model)
    if int(getattr(tm, "voice_dim", 0) or 0) <= 0:
        raise VoiceError(
            f"{checkpoint_name(tm, info if info is not None else own)} was trained without reference clips "
            "(model.voice_dim=0): it takes no voice; leave voice= empty (train with +recipe=voices for voices)"
        )
    return tm


def fingerprint(model: Any) -> str:
    """sha256 (hex) of the weights a voice latent depends on (:data:`FINGERPRINT_PREFIXES`)."""
    tm = require_voice_model(model)
    h = hashlib.sha256()
    state = tm.state_dict()
    for name in sorted(k for k in state if k.startswith(FINGERPRINT_PREFIXES)):
        t = state[name].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_latent(
    path: str | os.PathLike,
    latent: Tensor,
    model: Any,
    clips: Sequence[str] = (),
    seconds: float | None = None,
    info: Any = None,
) -> Path:
    """Write a latent file atomically (temp file + ``os.replace``); returns its path.

    ``model``: the TextToMel (or TextToSpeech) whose reference encoder made ``latent`` (voice_dim,).
    """
    tm, own = unwrap(model)
    info = info if info is not None else own
    tm = require_voice_model(tm, info)
    latent = torch.as_tensor(latent).detach().to("cpu", torch.float32).reshape(-1).contiguous()
    if latent.numel() != tm.voice_dim:
        raise VoiceError(
            f"latent has {latent.numel()} values; this model's voices have {tm.voice_dim} (voice_dim)"
        )
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "format": FORMAT,
        "version": VERSION,
        "latent": latent,
        "fingerprint": fingerprint(tm),
        "voice_dim": int(tm.voice_dim),
        "mel_spec": dict(tm.mel_spec.to_dict()),
        "clips": [str(c) for c in clips],
        "seconds": None if seconds is None else float(seconds),
        "checkpoint": str(getattr(info, "path", "") or ""),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        torch.save(data, tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def read_latent_file(path: str | os.PathLike) -> dict[str, Any]:
    """The dictionary of a latent file, checked to be one (no model needed)."""
    p = Path(path).expanduser()
    make = "make one with python -m tortoise_lite.voices ckpt=... voice=CLIPS out=NAME.pt"
    if not p.is_file():
        raise VoiceError(f"voice latent {p} does not exist; {make}")
    if p.stat().st_size == 0:
        raise VoiceError(f"voice latent {p} is empty (0 bytes); {make}")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise VoiceError(f"voice latent {p} needs pickled code to load (refused); {make}") from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        IndexError,
        UnicodeDecodeError,
    ) as e:
        raise VoiceError(
            f"voice latent {p} is not a readable torch file ({str(e).splitlines()[0]}); {make}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VoiceError(f"{p} is not a tortoise_lite voice latent (no format '{FORMAT}'); {make}")
    if int(data.get("version", 0)) > VERSION:
        raise VoiceError(
            f"voice latent {p} has version {data.get('version')}; this tortoise_lite reads up to {VERSION}: upgrade"
        )
    if not isinstance(data.get("latent"), Tensor):
        raise VoiceError(f"voice latent {p} holds no latent tensor; {make}")
    return data


def load_latent(path: str | os.PathLike, model: Any, info: Any = None) -> Tensor:
    """The latent (voice_dim,) float32 of a latent file made with ``model``'s reference encoder.

    VoiceError (naming the latent file and both checkpoints) for a latent of the wrong size or made with
    another checkpoint, or for a model that takes no voice."""
    tm, own = unwrap(model)
    info = info if info is not None else own
    tm = require_voice_model(tm, info)
    p = Path(path).expanduser()
    data = read_latent_file(p)
    latent = data["latent"].detach().to(torch.float32).reshape(-1)
    here = checkpoint_name(tm, info)
    made = f" (made with {data['checkpoint']})" if data.get("checkpoint") else ""
    again = f"make it again from the clips with python -m tortoise_lite.voices ckpt=... out={p.name}"
    if latent.numel() != tm.voice_dim or int(data.get("voice_dim", latent.numel())) != tm.voice_dim:
        raise VoiceError(
            f"voice latent {p}{made} has {latent.numel()} values; {here} takes latents of {tm.voice_dim} "
            f"(voice_dim): it comes from another checkpoint; {again}"
        )
    mine = fingerprint(tm)
    if data.get("fingerprint") != mine:
        raise VoiceError(
            f"voice latent {p}{made} was made with another checkpoint than {here} (reference encoder "
            f"{str(data.get('fingerprint'))[:12]} vs {mine[:12]}); {again}"
        )
    return latent.to(tm.device)
