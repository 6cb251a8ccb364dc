"""The training app behind ``python -m tortoise_lite.train``: Hydra config -> objects -> ``Trainer.fit``.

``run(cfg)`` builds (in this order) the MelSpec, tokenizer, datamodule (prepared, for its MelStats),
the ``TextToMel``, the LightningModule, loggers and callbacks, then fits or validates. ``task: vocoder``
configs go to ``tortoise_lite.training.vocoder_module.build_and_fit``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    OnExceptionCheckpoint,
)
from omegaconf import DictConfig, OmegaConf

from tortoise_lite.checkpoint import build_metadata, build_text_to_mel
from tortoise_lite.training.callbacks import RecordItems, SampleCallback, StepProgressBar
from tortoise_lite.training.checkpoint_io import AtomicCheckpointIO, remove_stale_temporaries
from tortoise_lite.training.ema import EMA
from tortoise_lite.training.module import TextToMelModule


class ConfigError(ValueError):
    """The composed configuration cannot describe a run (a user error: reported in one line)."""


@dataclass
class RunResult:
    """What a run left behind (also printed as the summary screen)."""

    output_dir: Path
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    samples: list[Path] = field(default_factory=list)
    global_step: int = 0
    wall_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    log_dir: Path | None = None
    task: str = "text_to_mel"


class FinalCheckpoint(Callback):
    """Save ``last.ckpt`` at the end of training when the final step has no checkpoint yet (e.g. a
    ``max_time`` stop). Listed before the EMA callback so the raw weights are still live."""

    def __init__(self, checkpoint: ModelCheckpoint) -> None:
        self.checkpoint = checkpoint

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.checkpoint._last_global_step_saved == trainer.global_step or trainer.global_step == 0:
            return
        path = (
            Path(self.checkpoint.dirpath)
            / f"{self.checkpoint.CHECKPOINT_NAME_LAST}{self.checkpoint.FILE_EXTENSION}"
        )
        trainer.save_checkpoint(path, weights_only=False)  # full state: resumable
        self.checkpoint.last_model_path = str(path)
        self.checkpoint._last_global_step_saved = trainer.global_step


def build_tokenizer(text_cfg: DictConfig) -> Any:
    """``cfg.text`` is either the tokenizer itself (``_target_``) or holds it under ``tokenizer``."""
    if "_target_" in text_cfg:
        return instantiate(text_cfg)
    if "tokenizer" in text_cfg:
        return instantiate(text_cfg.tokenizer)
    raise ConfigError("config group 'text' needs a _target_ (the tokenizer) or a 'tokenizer' entry")


def build_callbacks(
    cfg: DictConfig, out: Path, vocoder: Any
) -> tuple[list[Callback], ModelCheckpoint, SampleCallback | None]:
    ck = cfg.checkpoint
    ckpt_dir = out / "checkpoints"
    has_val = (
        float(cfg.data.get("val_fraction", 0.05) or 0) > 0 and cfg.trainer.get("limit_val_batches", None) != 0
    )
    monitor = ck.monitor if has_val else None
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode="min",
        save_top_k=int(ck.save_top_k) if monitor else 0,
        save_last=True,
        every_n_train_steps=int(ck.every_n_train_steps),
        save_on_train_epoch_end=False,
    )
    callbacks: list[Callback] = [FinalCheckpoint(checkpoint)]
    sample_cb = None
    if cfg.samples.enabled:
        sample_cb = SampleCallback(
            vocoder=vocoder,
            out_dir=out / "samples",
            prompts=list(cfg.samples.prompts) if cfg.samples.prompts else None,
            every_n_steps=int(cfg.samples.every_n_steps),
            n_prompts=int(cfg.samples.n_prompts),
            steps=cfg.samples.steps,
            guidance=float(cfg.samples.guidance),
            seed=int(cfg.seed),
        )
        callbacks.append(sample_cb)
    if cfg.ema.enabled:
        callbacks.append(
            EMA(  # EMAWeightAveraging with a multi-tensor update and no per-step device sync
                decay=float(cfg.ema.decay),
                update_starting_at_step=cfg.ema.update_starting_at_step,
                update_every_n_steps=int(cfg.ema.update_every_n_steps),
            )
        )
    callbacks.append(OnExceptionCheckpoint(dirpath=ckpt_dir, filename="on_exception"))
    if cfg.get("logger"):  # LearningRateMonitor needs a logger (logger=none runs without one)
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.get("record_items", False):
        callbacks.append(RecordItems(out))
    if cfg.trainer.get("enable_progress_bar", True) and cfg.get("rich_progress", True):
        callbacks.append(StepProgressBar(leave=True))
    callbacks.append(checkpoint)
    return callbacks, checkpoint, sample_cb


def build_loggers(cfg: DictConfig, out: Path) -> list[Any] | bool:
    if not cfg.get("logger"):
        return False
    loggers = []
    for _, node in cfg.logger.items():
        if node is not None and "_target_" in node:
            loggers.append(instantiate(node, save_dir=str(out)))
    return loggers or False


# Keys whose type a command-line typo would break deep inside a library: checked up front.
_TYPED_KEYS: dict[str, tuple[type, ...]] = {
    "seed": (int,),
    "trainer.max_steps": (int,),
    "trainer.devices": (int, str, list),
    "trainer.val_check_interval": (int, float),
    "trainer.log_every_n_steps": (int,),
    "trainer.gradient_clip_val": (int, float, type(None)),
    "trainer.accumulate_grad_batches": (int,),
    "checkpoint.every_n_train_steps": (int,),
    "checkpoint.save_top_k": (int,),
    "data.batch_size": (int, type(None)),
    "data.num_workers": (int,),
    "optim.optimizer.lr": (int, float),
    "ema.decay": (float, int),
    "samples.every_n_steps": (int,),
    "samples.n_prompts": (int,),
}


def check_types(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the key when a common setting has the wrong type."""
    for key, types in _TYPED_KEYS.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if (
            value is None
            and type(None) not in types
            and OmegaConf.select(cfg, key, default="absent") == "absent"
        ):
            continue
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        if value is None or isinstance(value, bool) or not isinstance(value, types):
            if value is None and type(None) in types:
                continue
            if value is None:
                continue
            names = " or ".join(t.__name__ for t in types if t is not type(None))
            raise ConfigError(f"{key}={value!r} must be {names}")


def run(cfg: DictConfig, callbacks: Sequence[Callback] = (), profiler: Any = None) -> RunResult:
    """Train (or validate) as ``cfg`` says; returns where the results are. ``callbacks`` are added to the
    configured ones and ``profiler`` goes to the Trainer (``python -m tortoise_lite.bench profile``)."""
    start = time.monotonic()
    if cfg.get("task", "text_to_mel") != "vocoder":
        check_types(cfg)
    if cfg.get("task", "text_to_mel") == "vocoder":
        from tortoise_lite.training.vocoder_module import build_and_fit

        path = build_and_fit(cfg)
        p = Path(path)
        return RunResult(
            output_dir=p.parent, last_checkpoint=p, wall_seconds=time.monotonic() - start, task="vocoder",
            samples=sorted(p.parent.glob("**/*.wav"))[:8],
        )  # fmt: skip

    out = Path(cfg.output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")

    mel = instantiate(cfg.mel)
    tokenizer = build_tokenizer(cfg.text)
    datamodule = instantiate(_data_config(cfg.data), mel=mel, tokenizer=tokenizer)
    datamodule.prepare_data()
    datamodule.setup("fit")
    stats = datamodule.stats

    model_cfg = model_config(cfg)
    if model_cfg.get("n_speakers") == "auto":  # one table row per speaker (tones: timbre) of the data
        model_cfg["n_speakers"] = datamodule.n_speakers
    model = build_text_to_mel(model_cfg, mel, tokenizer, stats, instantiate=_hydra_instantiate)
    voice_refs = None
    if getattr(model, "voice_dim", 0) > 0:
        if getattr(datamodule, "references", 0) <= 0:
            raise ConfigError(
                f"model.voice_dim={model.voice_dim} conditions on reference clips: set data.references "
                "(clips per item, e.g. 3) on a corpus with speakers"
            )
        voice_refs = datamodule.voice_references()
    metadata = build_metadata(
        OmegaConf.to_container(cfg, resolve=True),
        model_cfg,
        mel,
        tokenizer,
        stats,
        speakers=datamodule.speakers,
        voice_references=voice_refs,
    )
    scheduler = instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None
    module = TextToMelModule(
        model,
        optimizer=instantiate(cfg.optim.optimizer),
        scheduler=scheduler,
        metadata=metadata,
        max_nonfinite_steps=int(cfg.optim.max_nonfinite_steps),
        val_seed=int(cfg.seed),
        compile=OmegaConf.to_container(cfg.compile, resolve=True) if cfg.get("compile") else None,
    )
    vocoder = instantiate(cfg.vocoder, mel_spec=mel) if cfg.samples.enabled else None
    extra_callbacks = list(callbacks)
    callbacks, checkpoint, sample_cb = build_callbacks(cfg, out, vocoder)
    extra = {"profiler": profiler} if profiler is not None else {}
    loggers = build_loggers(cfg, out)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=[*callbacks, *extra_callbacks],
        **extra,
        logger=loggers,
        default_root_dir=str(out),
        use_distributed_sampler=False,  # the datamodule shards by rank itself (disjoint, equal counts)
        plugins=[AtomicCheckpointIO()],  # a kill during a save never leaves a truncated checkpoint
    )
    ckpt_path = cfg.get("ckpt_path")
    if trainer.is_global_zero:  # half-written files of saves a kill interrupted (never read: not *.ckpt)
        remove_stale_temporaries(out / "checkpoints")
    existing = sorted((out / "checkpoints").glob("*.ckpt"))
    if ckpt_path is None and existing and cfg.get("mode", "fit") == "fit":
        # With OnExceptionCheckpoint, Lightning would silently resume from "last": make it explicit.
        raise FileExistsError(
            f"{out} already holds checkpoints ({existing[-1].name}, ...): add ckpt_path=last to resume that run, "
            "or choose a new output_dir=..."
        )
    if ckpt_path is None and cfg.get("mode", "fit") == "fit":
        warnings.filterwarnings("ignore", message=r".*ckpt_path=None\)` was called without a model.*")
        warnings.filterwarnings("ignore", message=r".*there is no last checkpoint available.*")
    if ckpt_path not in (None, "last", "best"):
        ckpt_path = str(Path(ckpt_path).expanduser())
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(
                f"ckpt_path={ckpt_path} does not exist (use ckpt_path=last to resume the run in {out})"
            )
    # The datamodule stores its position in the batch stream in every checkpoint and continues from it
    # (MelDataModule.data_position), so Lightning's warning about non-resumable loaders does not apply.
    warnings.filterwarnings(
        "ignore", message=r".*resuming from a checkpoint that ended before the epoch ended.*"
    )
    mode = cfg.get("mode", "fit")
    metrics: dict[str, float] = {}
    if mode == "fit":
        fit_start = time.monotonic()
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        metrics["mel_frames_seen"] = float(module.frames_seen * trainer.world_size)
        metrics["fit_seconds"] = time.monotonic() - fit_start
    elif mode == "validate":
        results = trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics = {k: float(v) for r in results for k, v in r.items()}
    else:
        raise ConfigError(f"mode={mode!r} is not one of: fit, validate")

    log_dir = None
    if trainer.logger is not None and getattr(trainer.logger, "log_dir", None):
        log_dir = Path(trainer.logger.log_dir)
    last = Path(checkpoint.last_model_path) if checkpoint.last_model_path else None
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    return RunResult(
        output_dir=out,
        last_checkpoint=last,
        best_checkpoint=best,
        samples=list(sample_cb.written) if sample_cb is not None else [],
        global_step=int(trainer.global_step),
        wall_seconds=time.monotonic() - start,
        metrics=metrics,
        log_dir=log_dir,
    )


def _data_config(data: DictConfig) -> DictConfig:
    """``data.root=PATH`` is a shorthand for the source's ``root`` (LJSpeech) or ``path`` (folder)."""
    if "root" in list(data.keys()) and OmegaConf.is_missing(data, "root"):
        raise ConfigError("this recipe needs the dataset location: add data.root=/path/to/your/dataset")
    root = data.get("root")
    if root is None:
        return data
    data = data.copy()
    OmegaConf.set_struct(data, False)
    source = data.source
    key = "root" if "root" in list(source.keys()) else "path"  # `in` is False for a ??? value
    source[key] = root
    del data["root"]
    return data


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved ``model`` config made self-contained: the text encoder (``text.encoder``), the
    objective (with its schedule) and the sampler of the ``objective`` / ``schedule`` / ``sampler`` groups
    are filled in where the model config leaves them out. This dict is what the checkpoint stores and what loading rebuilds."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if not isinstance(model, dict) or "_target_" not in model:
        raise ConfigError("config group 'model' must be a dict with a _target_ (e.g. model=unet1d)")
    text_encoder = cfg.text.get("encoder") if cfg.get("text") is not None else None
    if model.get("text_encoder") is None and text_encoder is not None:
        model["text_encoder"] = OmegaConf.to_container(text_encoder, resolve=True)
    if model.get("objective") is None and cfg.get("objective") is not None:
        model["objective"] = OmegaConf.to_container(cfg.objective, resolve=True)
    objective = model.get("objective")
    if isinstance(objective, dict) and objective.get("schedule") is None and cfg.get("schedule") is not None:
        objective["schedule"] = OmegaConf.to_container(cfg.schedule, resolve=True)
    if model.get("sampler") is None and cfg.get("sampler") is not None:
        model["sampler"] = OmegaConf.to_container(cfg.sampler, resolve=True)
    return model


def _hydra_instantiate(cfg: dict, **kwargs: Any) -> Any:
    # Objects are passed to the built partial, not to instantiate: Hydra would turn dataclasses
    # (MelSpec, MelStats) into DictConfigs.
    factory = instantiate(OmegaConf.create(cfg), _partial_=True)
    return factory(**kwargs)


def summary(result: RunResult) -> str:
    """The one-screen summary printed at the end of a run."""
    lines = [f"tortoise_lite {result.task} run finished in {result.wall_seconds / 60:.1f} min"]
    lines.append(f"  output dir   : {result.output_dir}")
    if result.global_step:
        lines.append(f"  steps        : {result.global_step}")
    if result.last_checkpoint:
        lines.append(f"  checkpoint   : {result.last_checkpoint}")
    if result.best_checkpoint and result.best_checkpoint != result.last_checkpoint:
        lines.append(f"  best (val)   : {result.best_checkpoint}")
    for k in ("val/loss", "train/loss"):
        if k in result.metrics:
            lines.append(f"  {k:<13}: {result.metrics[k]:.4f}")
    if result.metrics.get("mel_frames_seen") and result.metrics.get("fit_seconds"):
        rate = result.metrics["mel_frames_seen"] / result.metrics["fit_seconds"]
        lines.append(f"  throughput   : {rate:,.0f} mel frames/s (fit incl. validation and samples)")
    wavs = [p for p in result.samples if p.suffix == ".wav"]
    pngs = [p for p in result.samples if p.suffix == ".png"]
    if wavs:
        lines.append(f"  samples      : {len(wavs)} wav + {len(pngs)} png in {wavs[0].parent}")
    if result.log_dir:
        lines.append(f"  logs         : {result.log_dir}   (tensorboard --logdir {result.output_dir})")
    if result.last_checkpoint and result.task == "text_to_mel":
        lines.append(f"  resume       : add ckpt_path=last output_dir={result.output_dir}")
    return "\n".join(lines)
