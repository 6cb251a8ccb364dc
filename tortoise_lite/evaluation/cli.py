"""What the ``synthesize`` and ``evaluate`` entry points share: composing their Hydra config from
``key=value`` arguments, building the vocoder and sampler the config names, one-line user errors.

The configs are composed with Hydra's compose API (not ``@hydra.main``): these commands write no
``.hydra`` folders or logs, and a bad argument becomes one ``error:`` line with exit status 2.
``TORTOISE_LITE_DEBUG=1`` shows the full traceback instead.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: keys whose values are free text. ``text`` is also the name of a config group (the tokenizers), which
#: Hydra would not let a command line set, and its grammar would split "Well, hi" at the comma: these
#: arguments are taken out before composing and set on the composed config verbatim.
FREE_TEXT_KEYS = ("text", "regenerate")  # regenerate=3,7 (Hydra would read a sweep)


class UsageError(ValueError):
    """The command line asks for something impossible; the message says what to change."""


def debug() -> bool:
    return os.environ.get("TORTOISE_LITE_DEBUG", "") not in ("", "0")


def split_free_text(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """``(hydra overrides, {key: verbatim value})`` for the :data:`FREE_TEXT_KEYS` (last one wins)."""
    rest, free = [], {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in FREE_TEXT_KEYS:
            free[key.lstrip("+~")] = value
        else:
            rest.append(arg)
    return rest, free


def compose(config_name: str, argv: Sequence[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``key=value`` overrides (Hydra syntax, except the
    free-text keys, whose values are taken as written)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from tortoise_lite.paths import config_dir

    overrides, free = split_free_text(argv)
    with initialize_config_dir(str(config_dir()), version_base="1.3", job_name=config_name):
        cfg = hydra_compose(config_name, overrides=overrides)
    for key, value in free.items():
        if key not in cfg:
            raise UsageError(f"{config_name} has no option {key}=")
        cfg[key] = value
    return cfg


def require(cfg: DictConfig, key: str, hint: str) -> Any:
    """``cfg[key]`` or a :class:`UsageError` saying ``key=...`` is needed."""
    if OmegaConf.is_missing(cfg, key) or cfg.get(key) in (None, ""):
        raise UsageError(f"{key}=... is required: {hint}")
    return cfg[key]


def build_vocoder_spec(cfg: DictConfig, mel_spec: Any) -> Any:
    """What :func:`tortoise_lite.api.build_vocoder` takes, from ``vocoder_ckpt=PATH`` or the ``vocoder``
    group (``vocoder=griffin_lim``, ``vocoder=checkpoint vocoder.path=PATH``...) built for ``mel_spec``."""
    from hydra.utils import instantiate

    if cfg.get("vocoder_ckpt"):
        return str(Path(str(cfg.vocoder_ckpt)).expanduser())
    node = cfg.get("vocoder")
    if node is None:
        return "griffin_lim"
    data = OmegaConf.to_container(node, resolve=False)
    data.pop("mel_spec", None)  # the acoustic model's MelSpec, not the config's `mel` group
    target = str(data.get("_target_", ""))
    if target.endswith("load_vocoder"):
        path = data.get("path")
        if path in (None, "???", ""):
            raise UsageError("vocoder=checkpoint needs vocoder.path=PATH (or use vocoder_ckpt=PATH)")
        return str(Path(str(path)).expanduser())
    factory = instantiate(OmegaConf.create(data), _partial_=True)
    return factory(mel_spec=mel_spec)


def build_sampler_from_config(cfg: DictConfig) -> Any:
    """The ``sampler`` group's Sampler when one is chosen (``sampler=heun``), else None (checkpoint's)."""
    from hydra.utils import instantiate

    node = cfg.get("sampler")
    if node is None:
        return None
    if isinstance(node, str):
        from tortoise_lite.api import build_sampler

        return build_sampler(node)
    return instantiate(node)


def setup_torch(cfg: DictConfig) -> str:
    """Apply ``threads`` and resolve ``device`` (``auto`` = cuda when available)."""
    import torch

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    device = str(cfg.get("device", "cpu"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device={device} but CUDA is not available here; use device=cpu")
    return device


def jsonable(x: Any) -> Any:
    """Plain JSON (non-finite floats become null, tuples lists, numpy scalars Python numbers)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the command, the files or the data are wrong", not "the program is"."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from tortoise_lite.checkpoint import CheckpointError

    return (
        UsageError,
        CheckpointError,
        HydraException,
        OmegaConfBaseException,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
        ValueError,  # MelSpecMismatchError, UnknownSymbolError, VocoderLoadError, bad values
    )


def one_line(exc: BaseException) -> str:
    """The most useful single line of an exception (Hydra wraps the real cause)."""
    msgs = []
    e: BaseException | None = exc
    while e is not None and len(msgs) < 4:
        text = " ".join(str(e).split("Config search path:")[0].split())  # Hydra appends its search path
        if text:
            msgs.append(text)
        e = e.__cause__ or (e.__context__ if not e.__suppress_context__ else None)
    if not msgs:
        return type(exc).__name__
    return msgs[-1] if len(msgs) > 1 and len(msgs[0]) > 300 else msgs[0]


def run_cli(name: str, body: Callable[[list[str]], int], argv: Sequence[str] | None, usage: str) -> int:
    """Run ``body(argv)``; user errors print ``error: ...`` (one line) and return 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(usage)
        return 0
    if "--cfg" in argv:
        argv.remove("--cfg")
        try:
            print(OmegaConf.to_yaml(compose(name, argv)))
        except Exception as e:
            if debug() or not isinstance(e, user_error_types()):
                raise
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 2
        return 0
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return int(body(argv) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug() or not isinstance(e, user_error_types()):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
