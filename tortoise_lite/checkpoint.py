"""Text-to-mel checkpoints: what they hold, and how to load one safely without Lightning.

A training checkpoint is the Lightning ``.ckpt`` dictionary plus one key, ``"tortoise_lite"``, written by
:class:`tortoise_lite.training.module.TextToMelModule`:

========================  ==================================================================================
key                       content
========================  ==================================================================================
``state_dict``            the LightningModule weights (``model.`` prefix). With ``EMAWeightAveraging`` these
                          are the EMA weights and the raw weights sit in ``current_model_state``.
``tortoise_lite``         ``format`` / ``format_version`` / ``package_version``, ``config`` (the resolved
                          Hydra config as plain containers), ``model`` (the ``model`` sub-config with its
                          ``_target_`` strings), ``mel_spec`` (``MelSpec.to_dict()``), ``tokenizer``
                          (``Tokenizer.to_dict()``: the vocabulary), ``stats`` (``MelStats.to_dict()``).
========================  ==================================================================================

Everything is tensors and plain containers, so files load with ``torch.load(weights_only=True)``; a file
that needs pickled code objects is refused. The model is rebuilt from the stored config through
:func:`safe_instantiate`, which only accepts ``_target_`` strings naming classes of an explicit allowlist
(:func:`allowed_targets`) and plain keyword values: a checkpoint never chooses what code runs.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import tortoise_lite

META_KEY = "tortoise_lite"
FORMAT = "tortoise_lite.text_to_mel"
FORMAT_VERSION = 1
STATE_PREFIX = "model."

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointMismatchError",
    "UnsafeCheckpointError",
    "allowed_targets",
    "build_metadata",
    "load_text_to_mel",
    "read_checkpoint",
    "safe_instantiate",
]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or not a tortoise_lite text-to-mel checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs arbitrary pickled objects (code) to load, or its config names a class not allowed."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's MelSpec or vocabulary differs from what the caller expects."""


# Modules whose classes a checkpoint config may name. Fixed here, never read from a checkpoint.
_ALLOWED_MODULES = (
    "tortoise_lite.models",
    "tortoise_lite.models.text_to_mel",
    "tortoise_lite.models.unet1d",
    "tortoise_lite.models.unet2d",
    "tortoise_lite.models.duration",
    "tortoise_lite.models.alignment",
    "tortoise_lite.models.encoders",
    "tortoise_lite.models.text_encoder",
    "tortoise_lite.models.blocks",
    "tortoise_lite.diffusion",
    "tortoise_lite.diffusion.schedules",
    "tortoise_lite.diffusion.objectives",
    "tortoise_lite.diffusion.samplers",
    "tortoise_lite.diffusion.guidance",
    "tortoise_lite.text.tokenizers",
    "tortoise_lite.text.encoders",
    "tortoise_lite.audio.mel",
    "tortoise_lite.audio.stats",
)


def allowed_targets() -> dict[str, Callable[..., Any]]:
    """``{"module.Class": Class}`` for every public class (and ``*_from_config`` factory) defined in the
    allowlisted tortoise_lite modules; the only things :func:`safe_instantiate` will call."""
    table: dict[str, Callable[..., Any]] = {}
    for name in _ALLOWED_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and e.name.startswith("tortoise_lite"):
                continue  # an optional sub-module this version does not have
            raise
        for attr, obj in vars(module).items():
            if attr.startswith("_"):
                continue
            defined_here = getattr(obj, "__module__", None) == module.__name__
            is_factory = inspect.isfunction(obj) and attr.endswith("_from_config")
            if defined_here and (inspect.isclass(obj) or is_factory):
                table[f"{module.__name__}.{attr}"] = obj
                table.setdefault(f"{name}.{attr}", obj)  # re-exports under a package path
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr, None)
            if inspect.isclass(obj) and obj.__module__.startswith("tortoise_lite."):
                table[f"{name}.{attr}"] = obj
                table.setdefault(f"{obj.__module__}.{attr}", obj)
    return table


_PLAIN = (str, int, float, bool, type(None))


def safe_instantiate(
    node: Any,
    allowed: Mapping[str, Callable[..., Any]] | None = None,
    inject: Mapping[str, Any] | None = None,
    where: str = "model",
) -> Any:
    """Build objects from a plain config tree, calling only allowlisted targets.

    ``node``: dicts/lists/scalars; a dict with ``_target_`` becomes ``allowed[target](**kwargs)`` with its
    other keys instantiated recursively (``_partial_`` is honoured, ``_convert_`` ignored: values are
    plain containers already; other ``_x_`` keys are refused).
    ``inject``: keyword values given to the top-level call (objects the checkpoint stores as data, e.g.
    ``tokenizer``), overriding config keys of the same name. Raises :class:`UnsafeCheckpointError` naming
    the config path of any target outside the allowlist or any non-plain value.
    """
    allowed = allowed_targets() if allowed is None else allowed
    if isinstance(node, _PLAIN):
        return node
    if isinstance(node, (list, tuple)):
        return [safe_instantiate(v, allowed, None, f"{where}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, Mapping):
        raise UnsafeCheckpointError(f"{where}: config value of type {type(node).__name__} is not plain data")
    if "_target_" not in node:
        out = {str(k): safe_instantiate(v, allowed, None, f"{where}.{k}") for k, v in node.items()}
        if inject:
            out.update(inject)
        return out
    target = node["_target_"]
    if not isinstance(target, str) or target not in allowed:
        raise UnsafeCheckpointError(
            f"{where}._target_={target!r} is not a tortoise_lite class this loader allows; refusing to build it"
        )
    partial = bool(node.get("_partial_", False))
    kwargs: dict[str, Any] = {}
    for k, v in node.items():
        if k in ("_target_", "_partial_", "_convert_"):
            continue  # _convert_: values are always plain Python containers here
        if k.startswith("_") and k.endswith("_"):
            raise UnsafeCheckpointError(
                f"{where}.{k}: Hydra directive not supported when loading a checkpoint"
            )
        kwargs[k] = safe_instantiate(v, allowed, None, f"{where}.{k}")
    if inject:
        kwargs.update(inject)
    fn = allowed[target]
    if partial:
        import functools

        return functools.partial(fn, **kwargs)
    try:
        return fn(**kwargs)
    except TypeError as e:
        raise CheckpointError(f"{where}: cannot build {target} from the checkpoint's config: {e}") from e


@dataclass
class CheckpointInfo:
    """What a loaded checkpoint says about itself (everything except the weights)."""

    path: Path
    package_version: str
    format_version: int
    global_step: int
    epoch: int
    used_ema: bool
    has_ema: bool
    config: dict[str, Any]
    model_config: dict[str, Any]
    mel_spec: Any  # MelSpec
    tokenizer: Any  # Tokenizer
    stats: Any  # MelStats
    speakers: list[str] = field(default_factory=list)  # speaker names by id (empty: single speaker)
    # voice models: the voices trained on, and a few reference clips (raw log-mels) of each
    voices: list[str] = field(default_factory=list)
    voice_references: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that say what is wrong with the file.

    Raises :class:`CheckpointError` (missing / unreadable / truncated file) or
    :class:`UnsafeCheckpointError` (the file needs pickled code objects to load)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist; pass the path of a .ckpt written by training")
    if p.is_dir():
        raise CheckpointError(
            f"checkpoint {p} is a directory; pass a .ckpt file (e.g. {p}/checkpoints/last.ckpt)"
        )
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"checkpoint {p} needs arbitrary pickled objects to load (refused: weights_only=True). "
            f"Only load files you trust; tortoise_lite checkpoints never need this. Detail: {str(e).splitlines()[0]}"
        ) from e
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        IndexError,
        ValueError,
        UnicodeDecodeError,
    ) as e:
        raise CheckpointError(
            f"checkpoint {p} is not a readable torch file (truncated or corrupted?): {str(e).splitlines()[0]}"
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {p} holds a {type(obj).__name__}, not a checkpoint dictionary")
    return obj


def build_metadata(
    config: Mapping[str, Any],
    model_config: Mapping[str, Any],
    mel_spec: Any,
    tokenizer: Any,
    stats: Any,
    speakers: list[str] | None = None,
    voice_references: Mapping[str, list[torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """The ``checkpoint["tortoise_lite"]`` entry (plain data only). ``speakers``: names by speaker id;
    ``voice_references``: for voice models, the trained voices' names with a few raw log-mel clips each
    (stored as float16), so that a trained voice can be named at inference and told from a held-out one."""
    voices = {
        str(name): [c.detach().cpu().to(torch.float16).contiguous() for c in clips]
        for name, clips in (voice_references or {}).items()
    }
    return {
        "voices": voices,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": tortoise_lite.__version__,
        "config": _plain(config, "config"),
        "model": _plain(model_config, "model"),
        "mel_spec": dict(mel_spec.to_dict()),
        "tokenizer": _plain(tokenizer.to_dict(), "tokenizer"),
        "stats": _plain(stats.to_dict(), "stats"),
        "speakers": [str(s) for s in (speakers or [])],
    }


def _plain(x: Any, where: str) -> Any:
    """Check (and copy) that ``x`` is plain data: what ``weights_only`` loading accepts."""
    if isinstance(x, _PLAIN) or isinstance(x, torch.Tensor):
        return x
    if isinstance(x, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(x)]
    raise TypeError(f"{where}: {type(x).__name__} cannot go into a checkpoint (plain data only)")


def _strip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(STATE_PREFIX) :]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}


def model_state_dicts(
    ckpt: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor] | None, dict[str, torch.Tensor]]:
    """``(ema_state | None, raw_state)`` of the TextToMel inside a training checkpoint (prefix removed)."""
    if "current_model_state" in ckpt:  # EMAWeightAveraging: state_dict = average, current = raw
        return _strip(ckpt["state_dict"]), _strip(ckpt["current_model_state"])
    return None, _strip(ckpt["state_dict"])


def _check_expected(
    info_mel: Any, info_tok: Any, expected_mel_spec: Any, expected_tokenizer: Any, p: Path
) -> None:
    if expected_mel_spec is not None:
        from tortoise_lite.audio.mel import MelSpec, MelSpecMismatchError

        exp = (
            expected_mel_spec
            if isinstance(expected_mel_spec, MelSpec)
            else MelSpec.from_dict(dict(expected_mel_spec))
        )
        try:
            exp.check_compatible(info_mel, what_self="expected", what_other=f"checkpoint {p.name}")
        except MelSpecMismatchError as e:
            raise CheckpointMismatchError(str(e)) from e
    if expected_tokenizer is not None:
        exp_d = (
            expected_tokenizer if isinstance(expected_tokenizer, Mapping) else expected_tokenizer.to_dict()
        )
        got_d = info_tok.to_dict()
        if dict(exp_d) != dict(got_d):
            raise CheckpointMismatchError(
                f"checkpoint {p.name}: vocabulary differs from the expected one: " + _dict_diff(exp_d, got_d)
            )


def _dict_diff(expected: Mapping[str, Any], got: Mapping[str, Any]) -> str:
    parts = []
    for k in sorted(set(expected) | set(got)):
        a, b = expected.get(k, "<missing>"), got.get(k, "<missing>")
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            sa, sb = [str(s) for s in a], [str(s) for s in b]
            only_a = [s for s in sa if s not in set(sb)][:8]
            only_b = [s for s in sb if s not in set(sa)][:8]
            detail = f"{len(a)} vs {len(b)} entries"
            if only_a or only_b:
                detail += f"; only expected: {only_a}; only checkpoint: {only_b}"
            elif sa != sb:
                detail += "; same symbols in a different order"
            parts.append(f"{k}: {detail}")
        else:
            parts.append(f"{k}: expected {a!r}, checkpoint has {b!r}")
    return "; ".join(parts) or "(no field differs)"


def load_text_to_mel(
    path: str | os.PathLike,
    map_location: Any = "cpu",
    use_ema: bool = True,
    expected_mel_spec: Any = None,
    expected_tokenizer: Any = None,
) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Rebuild the ``TextToMel`` of a training checkpoint, in eval mode, without Lightning.

    Args:
        path: a ``.ckpt`` written by ``python -m tortoise_lite.train``.
        map_location: where tensors go (``"cpu"``, ``"cuda"``, a device).
        use_ema: take the EMA weights when the checkpoint has them (raw weights otherwise).
        expected_mel_spec: a MelSpec (or its dict) the caller needs, e.g. its vocoder's; a difference
            raises :class:`CheckpointMismatchError` naming every differing field.
        expected_tokenizer: a Tokenizer (or its ``to_dict()``) whose vocabulary must match.

    Returns ``(model, info)``. Raises :class:`CheckpointError` and subclasses with a message naming the file.
    """
    from tortoise_lite.audio.mel import MelSpec
    from tortoise_lite.audio.stats import MelStats
    from tortoise_lite.text.tokenizers import tokenizer_from_dict

    p = Path(path).expanduser()
    ckpt = read_checkpoint(p, map_location=map_location)
    meta = ckpt.get(META_KEY)
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
        kind = (
            "a Lightning checkpoint of another program"
            if "state_dict" in ckpt
            else "not a training checkpoint"
        )
        raise CheckpointError(
            f"{p} is {kind}: it has no '{META_KEY}' text-to-mel entry; pass a .ckpt written by tortoise_lite.train"
        )
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{p} has checkpoint format {meta['format_version']} from tortoise_lite {meta.get('package_version')}; "
            f"this version ({tortoise_lite.__version__}) reads up to {FORMAT_VERSION}: upgrade tortoise_lite"
        )
    try:
        mel_spec = MelSpec.from_dict(dict(meta["mel_spec"]))
        tokenizer = tokenizer_from_dict(dict(meta["tokenizer"]))
        stats = MelStats.from_dict(dict(meta["stats"]))
        model_cfg = dict(meta["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{p}: the '{META_KEY}' entry is incomplete or invalid: {e}") from e
    _check_expected(mel_spec, tokenizer, expected_mel_spec, expected_tokenizer, p)

    model = build_text_to_mel(
        model_cfg, mel_spec, tokenizer, stats, instantiate=safe_instantiate, where=str(p)
    )
    ema_state, raw_state = model_state_dicts(ckpt)
    state = ema_state if (use_ema and ema_state is not None) else raw_state
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{p}: weights do not fit the model rebuilt from its config "
            f"(missing {sorted(missing)[:5]}..., unexpected {sorted(unexpected)[:5]}...)"
        )
    model.to(map_location if not callable(map_location) else "cpu").eval()
    info = CheckpointInfo(
        path=p,
        package_version=str(meta.get("package_version", "?")),
        format_version=int(meta.get("format_version", 0)),
        global_step=int(ckpt.get("global_step", 0)),
        epoch=int(ckpt.get("epoch", 0)),
        used_ema=bool(use_ema and ema_state is not None),
        has_ema=ema_state is not None,
        config=dict(meta.get("config", {})),
        model_config=model_cfg,
        mel_spec=mel_spec,
        tokenizer=tokenizer,
        stats=stats,
        speakers=list(meta.get("speakers", [])),
        voices=list(meta.get("voices", {})),
        voice_references={str(k): [c.float() for c in v] for k, v in dict(meta.get("voices", {})).items()},
    )
    return model, info


# Objects a TextToMel takes that the checkpoint stores as data rather than as config.
INJECTED = ("mel_spec", "tokenizer", "stats")


def build_text_to_mel(
    model_cfg: Mapping[str, Any],
    mel_spec: Any,
    tokenizer: Any,
    stats: Any,
    instantiate: Callable[..., Any] = safe_instantiate,
    where: str = "model",
) -> torch.nn.Module:
    """Build the TextToMel described by ``model_cfg`` (a ``_target_`` tree), giving it the MelSpec,
    tokenizer and statistics. Used by training (with Hydra's instantiate) and loading (with
    :func:`safe_instantiate`), so both build the same object from the same config."""
    inject = {"mel_spec": mel_spec, "tokenizer": tokenizer, "stats": stats}
    cfg = {k: v for k, v in dict(model_cfg).items() if k not in INJECTED}
    if instantiate is safe_instantiate:
        return safe_instantiate(cfg, inject=inject, where=f"{where}: model")
    return instantiate(cfg, **inject)
