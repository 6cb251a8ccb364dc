"""Mel files -> wav files (the body of ``python -m tortoise_lite.vocode``).

Mel files: ``.npy`` arrays or ``.pt`` files holding a tensor or a dict ``{"mel": tensor, "mel_spec": dict}``
(the dict form lets the vocoder check the settings), shaped ``(n_mels, frames)`` or ``(B, n_mels, frames)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tortoise_lite.audio.io import save_wav
from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocoders.base import Vocoder, VocoderInputError, as_mel_spec

MEL_SUFFIXES = (".npy", ".pt")


def read_mel_file(path: str | os.PathLike) -> tuple[torch.Tensor, MelSpec | None]:
    """``(mel float32 tensor, MelSpec stored in the file or None)``; errors name the file."""
    path = Path(path)
    if path.suffix not in MEL_SUFFIXES:
        raise VocoderInputError(f"{path}: unsupported mel file type {path.suffix!r}; use .npy or .pt")
    mel_spec = None
    try:
        if path.suffix == ".npy":
            obj: Any = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # numpy/torch raise many types for corrupt files
        raise VocoderInputError(
            f"{path}: cannot read the mel file ({type(e).__name__}: {str(e)[:200]})"
        ) from None
    if isinstance(obj, Mapping):
        if "mel" not in obj:
            raise VocoderInputError(
                f"{path}: a .pt dict must hold the mel under 'mel' (found keys {sorted(obj)})"
            )
        if obj.get("mel_spec") is not None:
            try:
                mel_spec = as_mel_spec(obj["mel_spec"])
            except (TypeError, ValueError) as e:
                raise VocoderInputError(f"{path}: invalid 'mel_spec' entry ({e})") from None
        obj = obj["mel"]
    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj)
    if not isinstance(obj, torch.Tensor):
        raise VocoderInputError(f"{path}: expected a tensor/array, got {type(obj).__name__}")
    if not torch.is_floating_point(obj):
        raise VocoderInputError(f"{path}: expected a float log-mel, got dtype {obj.dtype}")
    return obj.float(), mel_spec


def list_mel_files(source: str | os.PathLike) -> list[Path]:
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix in MEL_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{source}: no .npy or .pt mel files in this folder")
        return files
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such mel file or folder")
    return [source]


@torch.inference_mode()
def vocode_files(
    vocoder: Vocoder,
    source: str | os.PathLike,
    output: str | os.PathLike,
    input_mel_spec: MelSpec | None = None,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """Vocode every mel file in ``source`` (file or folder) into ``output`` (``.wav`` file or folder).

    Each file's MelSpec (when stored in a ``.pt`` dict), else ``input_mel_spec``, must match the vocoder's.
    Inputs are all validated before any audio is written.
    """
    files = list_mel_files(source)
    output = Path(output)
    single_file_out = output.suffix.lower() == ".wav"
    if single_file_out and len(files) > 1:
        raise VocoderInputError(
            f"output={output} is a .wav file but input {source} holds {len(files)} mel files"
        )
    vocoder = vocoder.to(device).eval()
    jobs = []
    for f in files:
        mel, file_spec = read_mel_file(f)
        mel = vocoder.check_input(mel, file_spec or input_mel_spec, name=str(f))
        jobs.append((f, mel))
    written = []
    for f, mel in jobs:
        wav = vocoder.synthesize(mel.to(device)).float().cpu()
        for i in range(wav.shape[0]):
            if single_file_out and wav.shape[0] == 1:
                path = output
            else:
                base = output if not single_file_out else output.parent
                stem = f.stem if wav.shape[0] == 1 else f"{f.stem}_{i}"
                if single_file_out:
                    stem = f"{output.stem}_{i}"
                path = base / f"{stem}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_wav(path, wav[i].clamp(-1.0, 1.0), vocoder.sample_rate)
            written.append(path)
    return written
