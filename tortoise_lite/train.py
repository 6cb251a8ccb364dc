"""Train a model: ``python -m tortoise_lite.train +recipe=NAME [key=value ...]``.

Recipes (``conf/recipe/``, pages in ``recipes/``): speech, speech2d, tones, ljspeech, folder, text_to_audio,
vocoder. Useful overrides: ``trainer=gpu|ddp|ddp_cpu|cpu``, ``logger=csv``, ``output_dir=PATH``,
``ckpt_path=last`` (resume the run in ``output_dir``), ``trainer.max_steps=N``. ``--cfg job`` prints the
composed config; ``--help`` lists the groups.

User errors (bad override, missing file, wrong value) print one ``error:`` line and exit with status 2;
``TORTOISE_LITE_DEBUG=1`` shows the full traceback instead.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from tortoise_lite.paths import config_dir


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the command or the data is wrong", not "the program is wrong"."""
    from hydra.errors import HydraException
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from omegaconf.errors import OmegaConfBaseException

    from tortoise_lite.checkpoint import CheckpointError

    types: list[type[BaseException]] = [
        HydraException,  # bad override, unknown group option, instantiation failure
        OmegaConfBaseException,  # missing key, wrong type, interpolation error
        MisconfigurationException,
        CheckpointError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    ]
    for mod, name in (
        ("tortoise_lite.audio.mel", "MelSpecMismatchError"),
        ("tortoise_lite.audio.io", "AudioError"),
        ("tortoise_lite.data.manifest", "ManifestError"),
        ("tortoise_lite.data.preparation", "PrepareError"),
        ("tortoise_lite.text.tokenizers", "UnknownSymbolError"),
        ("tortoise_lite.training.module", "NonFiniteLossError"),
        ("tortoise_lite.training.app", "ConfigError"),
        ("tortoise_lite.vocoders.loading", "VocoderLoadError"),  # init_from= of a vocoder fine-tune
    ):
        try:
            module = __import__(mod, fromlist=[name])
            types.append(getattr(module, name))
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def _one_line(exc: BaseException) -> str:
    """The most useful single line of an exception (Hydra wraps the real cause)."""
    msgs = []
    e: BaseException | None = exc
    while e is not None and len(msgs) < 4:
        text = " ".join(str(e).split())
        if text:
            msgs.append(text)
        e = e.__cause__ or (e.__context__ if not e.__suppress_context__ else None)
    msg = msgs[-1] if len(msgs) > 1 and len(msgs[0]) > 300 else (msgs[0] if msgs else type(exc).__name__)
    override = getattr(exc, "override", None)  # hydra.errors.OverrideParseException
    if isinstance(override, str):
        msg = f"cannot parse the override {override!r}: {msg}"
    return msg


def _debug() -> bool:
    return os.environ.get("TORTOISE_LITE_DEBUG", "") not in ("", "0")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    from tortoise_lite.training.app import run, summary

    try:
        result = run(cfg)
    except Exception as e:
        # Report user errors here: past this point Hydra would add its own "Error executing job" line.
        if _debug() or not isinstance(e, _user_error_types()):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        from tortoise_lite.training.module import NonFiniteLossError

        raise SystemExit(1 if isinstance(e, NonFiniteLossError) else 2) from None
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        text = summary(result)
        try:
            from rich.console import Console
            from rich.panel import Panel

            Console(stderr=False).print(Panel(text, title="tortoise_lite.train", expand=False))
        except ImportError:
            print(text)


def main(argv: list[str] | None = None) -> int:
    """Run the Hydra app with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    debug = _debug()
    # Let exceptions reach us (Hydra would print a trimmed traceback and exit 1).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _hydra_main()
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:
        print(
            "error: interrupted (a checkpoint may have been written by OnExceptionCheckpoint)",
            file=sys.stderr,
        )
        return 130
    except Exception as e:
        if debug or not isinstance(e, _user_error_types()):
            raise
        from tortoise_lite.training.module import NonFiniteLossError

        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1 if isinstance(e, NonFiniteLossError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
