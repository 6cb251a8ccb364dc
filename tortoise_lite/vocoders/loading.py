"""Saving and loading vocoders: this package's checkpoints and the files users already have.

Recognized on disk (``load_vocoder(path)`` picks the format):

* tortoise_lite vocoder checkpoint (``save_checkpoint``): weights + MelSpec + arch + config + version;
  also a Lightning ``.ckpt`` written by ``VocoderGANModule`` (it embeds the same dict).
* HiFi-GAN (jik876/hifi-gan): a ``g_XXXXXXXX`` file (``{"generator": state_dict}``) with ``config.json``
  next to it, or the directory holding both (the latest ``g_*`` is used).
* BigVGAN (NVIDIA/BigVGAN): a directory with ``config.json`` and ``bigvgan_generator.pt``.
* Vocos (gemelo-ai/vocos): a directory with ``config.yaml`` and ``pytorch_model.bin`` (mel models only).

Weight-norm factors in either spelling (``weight_g/weight_v`` or ``parametrizations.weight.original0/1``)
are fused. The MelSpec of an external checkpoint is read from its config. Files are always read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tortoise_lite import __version__
from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocoders.base import Vocoder
from tortoise_lite.vocoders.bigvgan import BigVGANVocoder
from tortoise_lite.vocoders.hifigan import HiFiGANVocoder
from tortoise_lite.vocoders.vocos import VocosVocoder
from tortoise_lite.vocoders.weight_norm import fuse_weight_norm

CHECKPOINT_FORMAT = "tortoise_lite.vocoder"
CHECKPOINT_FORMAT_VERSION = 1
LIGHTNING_KEY = "tortoise_lite_vocoder"  # where VocoderGANModule stores the checkpoint dict in a .ckpt

ARCHITECTURES: dict[str, type[Vocoder]] = {
    "vocos": VocosVocoder,
    "hifigan": HiFiGANVocoder,
    "bigvgan": BigVGANVocoder,
}


class VocoderLoadError(ValueError):
    """A vocoder checkpoint could not be used; the message names the file and what to do."""


def _arch_name(vocoder: Vocoder) -> str:
    for name, cls in ARCHITECTURES.items():
        if type(vocoder) is cls:
            return name
    raise TypeError(
        f"cannot checkpoint a {type(vocoder).__name__}; known architectures: {sorted(ARCHITECTURES)}"
    )


def checkpoint_dict(vocoder: Vocoder, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything inference needs, as plain tensors / primitives (loadable with ``weights_only=True``)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "package_version": __version__,
        "arch": _arch_name(vocoder),
        "arch_config": dict(vocoder.arch),
        "mel_spec": vocoder.mel_spec.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in vocoder.state_dict().items()},
        "config": json.loads(json.dumps(dict(config or {}), default=str)),
    }


def save_checkpoint(
    path: str | os.PathLike, vocoder: Vocoder, config: Mapping[str, Any] | None = None
) -> Path:
    """Write ``vocoder`` (weights, MelSpec, arch, ``config``, package version) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint_dict(vocoder, config), tmp)
    os.replace(tmp, path)
    return path


def from_checkpoint_dict(ckpt: Mapping[str, Any], source: str = "checkpoint") -> Vocoder:
    """Rebuild a vocoder from ``checkpoint_dict`` output (the config is recorded, never instantiated)."""
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise VocoderLoadError(
            f"{source}: not a tortoise_lite vocoder checkpoint (format={ckpt.get('format')!r})"
        )
    if int(ckpt.get("format_version", 0)) > CHECKPOINT_FORMAT_VERSION:
        raise VocoderLoadError(
            f"{source}: written by a newer tortoise_lite ({ckpt.get('package_version')}); upgrade to load it"
        )
    arch = ckpt.get("arch")
    if arch not in ARCHITECTURES:
        raise VocoderLoadError(
            f"{source}: unknown vocoder architecture {arch!r}; known: {sorted(ARCHITECTURES)}"
        )
    try:
        mel_spec = MelSpec.from_dict(ckpt["mel_spec"])
        vocoder = ARCHITECTURES[arch](mel_spec, **ckpt["arch_config"])
        vocoder.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise VocoderLoadError(f"{source}: damaged or incompatible vocoder checkpoint ({e})") from None
    vocoder.config = ckpt.get("config", {})
    return vocoder.eval()


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip/weights_only errors all mean "not a usable checkpoint"
        raise VocoderLoadError(
            f"{path}: cannot be read as a weights-only torch checkpoint ({type(e).__name__}: {str(e)[:200]})"
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise VocoderLoadError(f"{path}: cannot read the vocoder config ({e})") from None


# ----- HiFi-GAN / BigVGAN -------------------------------------------------------------------------------
def mel_spec_from_hifigan_config(h: Mapping[str, Any], source: str = "config.json") -> MelSpec:
    """HiFi-GAN and BigVGAN share one mel function: Slaney scale+norm, magnitude, log clamp 1e-5, center=False."""
    try:
        return MelSpec(
            sample_rate=int(h["sampling_rate"]),
            n_fft=int(h["n_fft"]),
            hop=int(h["hop_size"]),
            win=int(h["win_size"]),
            n_mels=int(h["num_mels"]),
            fmin=float(h.get("fmin", 0) or 0),
            fmax=None if h.get("fmax") is None else float(h["fmax"]),
            scale="slaney",
            norm="slaney",
            center=False,
            log_floor=1e-5,
            power=1.0,
        )
    except KeyError as e:
        raise VocoderLoadError(f"{source}: missing mel setting {e}") from None


def _generator_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "generator" in obj:
        obj = obj["generator"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VocoderLoadError(f"{path}: expected a generator state dict (a dict with a 'generator' entry)")
    return fuse_weight_norm(obj)


def _load_generator(cls: type[Vocoder], weights: Path, config: Path) -> Vocoder:
    h = _read_json(config)
    vocoder = cls(mel_spec_from_hifigan_config(h, str(config)), **h)
    try:
        vocoder.generator.load_state_dict(_generator_state(_torch_load(weights), weights))
    except RuntimeError as e:
        raise VocoderLoadError(f"{weights}: weights do not match {config} ({str(e)[:300]})") from None
    vocoder.config = h
    return vocoder.eval()


def load_hifigan(weights: str | os.PathLike, config: str | os.PathLike | None = None) -> HiFiGANVocoder:
    """A ``g_XXXXXXXX`` file (or its directory) and ``config.json`` (default: next to the weights)."""
    weights = Path(weights)
    if weights.is_dir():
        candidates = sorted(p for p in weights.iterdir() if re.fullmatch(r"g_\d+", p.name))
        if not candidates:
            raise VocoderLoadError(f"{weights}: no HiFi-GAN generator file g_XXXXXXXX in this directory")
        weights = candidates[-1]
    config = Path(config) if config else weights.parent / "config.json"
    if not config.exists():
        raise VocoderLoadError(f"{weights}: HiFi-GAN needs its config.json (looked for {config})")
    return _load_generator(HiFiGANVocoder, weights, config)


def load_bigvgan(directory: str | os.PathLike) -> BigVGANVocoder:
    """A BigVGAN directory with ``config.json`` and ``bigvgan_generator.pt`` (or a ``g_*`` file)."""
    directory = Path(directory)
    weights = directory / "bigvgan_generator.pt"
    if not weights.exists():
        gens = sorted(p for p in directory.glob("g_*") if p.is_file())
        if not gens:
            raise VocoderLoadError(f"{directory}: no bigvgan_generator.pt (or g_XXXXXXXX) in this directory")
        weights = gens[-1]
    return _load_generator(BigVGANVocoder, weights, directory / "config.json")


# ----- Vocos ---------------------------------------------------------------------------------------------
def _class_name(block: Mapping[str, Any]) -> str:
    return str(block.get("class_path", "")).rsplit(".", 1)[-1]


def vocos_from_config(cfg: Mapping[str, Any], source: str = "config.yaml") -> VocosVocoder:
    """Build the Vocos model a ``config.yaml`` (``feature_extractor``/``backbone``/``head``) describes."""
    try:
        fe, bb, hd = cfg["feature_extractor"], cfg["backbone"], cfg["head"]
    except KeyError as e:
        raise VocoderLoadError(
            f"{source}: missing section {e}; expected feature_extractor/backbone/head"
        ) from None
    if _class_name(fe) != "MelSpectrogramFeatures":
        raise VocoderLoadError(
            f"{source}: feature extractor {_class_name(fe)!r} is not a mel front end; only mel Vocos models load"
        )
    if _class_name(bb) != "VocosBackbone" or _class_name(hd) != "ISTFTHead":
        raise VocoderLoadError(
            f"{source}: only VocosBackbone + ISTFTHead are supported, got {_class_name(bb)} + {_class_name(hd)}"
        )
    fa, ba, ha = fe.get("init_args", {}), bb.get("init_args", {}), hd.get("init_args", {})
    if ba.get("adanorm_num_embeddings"):
        raise VocoderLoadError(f"{source}: AdaLayerNorm (bandwidth-conditioned) backbones are not supported")
    n_fft = int(fa.get("n_fft", 1024))
    mel_spec = MelSpec(
        sample_rate=int(fa.get("sample_rate", 24000)),
        n_fft=n_fft,
        hop=int(fa.get("hop_length", 256)),
        win=n_fft,  # torchaudio's MelSpectrogram default win_length
        n_mels=int(fa.get("n_mels", 100)),
        fmin=float(fa.get("f_min", 0.0) or 0.0),
        fmax=None if fa.get("f_max") is None else float(fa["f_max"]),
        scale=str(fa.get("mel_scale", "htk")),
        norm=fa.get("norm"),
        center=fa.get("padding", "center") == "center",
        log_floor=1e-7,  # vocos.modules.safe_log
        power=1.0,
    )
    if int(ba.get("input_channels", mel_spec.n_mels)) != mel_spec.n_mels:
        raise VocoderLoadError(f"{source}: backbone input_channels != feature extractor n_mels")
    if int(ha.get("hop_length", mel_spec.hop)) != mel_spec.hop:
        raise VocoderLoadError(f"{source}: head hop_length != feature extractor hop_length")
    return VocosVocoder(
        mel_spec,
        dim=int(ba["dim"]),
        intermediate_dim=int(ba["intermediate_dim"]),
        num_layers=int(ba["num_layers"]),
        layer_scale_init_value=ba.get("layer_scale_init_value"),
        head_n_fft=int(ha.get("n_fft", n_fft)),
        head_padding=str(ha.get("padding", "same")),
    )


def load_vocos(directory: str | os.PathLike) -> VocosVocoder:
    """A Vocos directory with ``config.yaml`` and ``pytorch_model.bin``."""
    import yaml  # PyYAML comes with omegaconf/Hydra

    directory = Path(directory)
    config, weights = directory / "config.yaml", directory / "pytorch_model.bin"
    for p in (config, weights):
        if not p.exists():
            raise VocoderLoadError(
                f"{directory}: a Vocos directory needs config.yaml and pytorch_model.bin ({p.name} missing)"
            )
    try:
        cfg = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise VocoderLoadError(f"{config}: cannot parse ({e})") from None
    vocoder = vocos_from_config(cfg, str(config))
    state = _torch_load(weights)
    if not isinstance(state, Mapping):
        raise VocoderLoadError(f"{weights}: expected a state dict")
    try:
        vocoder.load_state_dict(fuse_weight_norm(state))
    except RuntimeError as e:
        raise VocoderLoadError(f"{weights}: weights do not match {config} ({str(e)[:300]})") from None
    vocoder.config = cfg
    return vocoder.eval()


# ----- dispatch ------------------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike) -> str:
    """``"tortoise_lite"``, ``"hifigan"``, ``"bigvgan"`` or ``"vocos"`` for a checkpoint path."""
    path = Path(path)
    if not path.exists():
        raise VocoderLoadError(f"{path}: no such vocoder checkpoint file or directory")
    if path.is_dir():
        if (path / "config.yaml").exists() and (path / "pytorch_model.bin").exists():
            return "vocos"
        if (path / "config.json").exists() and (path / "bigvgan_generator.pt").exists():
            return "bigvgan"
        if (path / "config.json").exists() and any(re.fullmatch(r"g_\d+", p.name) for p in path.iterdir()):
            h = _read_json(path / "config.json")
            return "bigvgan" if "activation" in h else "hifigan"
        if (path / "vocoder.pt").exists():
            return "tortoise_lite"
        raise VocoderLoadError(
            f"{path}: directory is not a known vocoder layout (Vocos: config.yaml+pytorch_model.bin; "
            "BigVGAN: config.json+bigvgan_generator.pt; HiFi-GAN: config.json+g_XXXXXXXX; tortoise_lite: vocoder.pt)"
        )
    if (path.parent / "config.json").exists() and (
        re.fullmatch(r"g_\d+", path.name) or path.suffix != ".ckpt"
    ):
        obj = _torch_load(path)
        if isinstance(obj, Mapping) and "generator" in obj:
            return "bigvgan" if "activation" in _read_json(path.parent / "config.json") else "hifigan"
    return "tortoise_lite"


def load_vocoder(path: str | os.PathLike, mel_spec: MelSpec | None = None) -> Vocoder:
    """Load any supported vocoder checkpoint (see module doc) in eval mode.

    Args:
        mel_spec: when given, the checkpoint's MelSpec must equal it (``MelSpecMismatchError`` otherwise).
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "vocos":
        vocoder: Vocoder = load_vocos(path)
    elif fmt == "bigvgan":
        vocoder = load_bigvgan(path if path.is_dir() else path.parent)
    elif fmt == "hifigan":
        vocoder = load_hifigan(path)
    else:
        file = path / "vocoder.pt" if path.is_dir() else path
        obj = _torch_load(file)
        if isinstance(obj, Mapping) and LIGHTNING_KEY in obj:
            obj = obj[LIGHTNING_KEY]
        if not isinstance(obj, Mapping) or obj.get("format") != CHECKPOINT_FORMAT:
            raise VocoderLoadError(
                f"{file}: not a recognized vocoder checkpoint (expected a tortoise_lite vocoder checkpoint, "
                "a HiFi-GAN g_* file with config.json, a BigVGAN or a Vocos directory)"
            )
        vocoder = from_checkpoint_dict(obj, str(file))
    if mel_spec is not None:
        vocoder.mel_spec.check_compatible(mel_spec, what_self=f"vocoder {path}", what_other="expected")
    return vocoder
