"""``TextToMelModule``: the thin LightningModule around a plain ``TextToMel``.

It only wires the model's ``loss(batch)`` into Lightning (optimizer and LR schedule from config, logging,
non-finite-loss guard) and writes the inference metadata into every checkpoint (see
:mod:`tortoise_lite.checkpoint`). EMA, checkpointing and sample writing are Lightning callbacks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric

from tortoise_lite.checkpoint import META_KEY
from tortoise_lite.data.batch import Batch

# The module's on_before_batch_transfer (host-side frame count and data checks) is meant to run beside the
# datamodule's on_after_batch_transfer; Lightning warns about the combination on every fit.
warnings.filterwarnings("ignore", message=r".*overridden `on_before_batch_transfer` in `LightningModule`.*")


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had a NaN/inf loss."""


class WarmupCosine:
    """LR multiplier: linear warmup over ``warmup_steps``, then cosine decay to ``min_ratio`` at ``total_steps``.

    A plain object (not a lambda) so ``LambdaLR.state_dict`` stores its fields and resume is exact."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.total_steps <= self.warmup_steps:
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int = 200,
    total_steps: int | None = None,
    min_ratio: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` with :class:`WarmupCosine` (``total_steps`` is filled in from the trainer)."""
    if total_steps is None:
        raise ValueError("warmup_cosine needs total_steps (the module fills it from trainer.max_steps)")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_ratio))


class TextToMelModule(L.LightningModule):
    """Lightning wrapper of a ``TextToMel``.

    Args:
        model: the ``TextToMel`` (``loss(batch) -> (loss, logs)``, ``generate(...)``).
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_`` of e.g. ``torch.optim.AdamW``).
        scheduler: ``optimizer -> LRScheduler`` or None; a callable accepting ``total_steps`` gets
            ``trainer.estimated_stepping_batches``. Stepped every optimizer step.
        metadata: the ``checkpoint["tortoise_lite"]`` entry (:func:`tortoise_lite.checkpoint.build_metadata`).
        max_nonfinite_steps: consecutive NaN/inf losses tolerated (each skips its step and is logged)
            before the run stops with :class:`NonFiniteLossError` (``OnExceptionCheckpoint`` then saves).
        val_seed: validation losses draw noise from a generator seeded by (``val_seed``, item id), so
            they do not depend on batch composition, world size or the training RNG.
        compile: ``torch.compile`` of the denoiser for training (``{"enabled", "mode", "dynamic",
            "fullgraph"}``, the app's ``compile`` config; see :func:`tortoise_lite.models.compile.compile_denoiser`).

    On a GPU the training step reads no device value on the host except the non-finite-loss guard: the
    data checks run on the host batch before its transfer, the frame count is taken there too, and the loss
    goes to the progress bar only on logging steps (Lightning turns progress-bar values into floats).
    AdamW is built with ``fused=True`` on CUDA unless the config sets ``fused`` or ``foreach``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        max_nonfinite_steps: int = 10,
        val_seed: int = 1234,
        compile: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.metadata = dict(metadata or {})
        self.max_nonfinite_steps = int(max_nonfinite_steps)
        self.val_seed = int(val_seed)
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.val_loss = MeanMetric()
        self.frames_seen = 0  # real (unpadded) mel frames trained on by this process in this run
        self._batch_frames = 0  # frames of the batch in flight, counted on the host before its transfer
        self.compile_options = dict(compile or {})
        self.compiled = False
        # Per-rank RNG state restored on resume (Lightning restores model/optimizer/loops, not RNG).
        self._rng_to_restore: dict[str, Any] | None = None

    # ---- training --------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # After the callbacks' setup: the EMA copy of the module stays uncompiled (it is never called).
        if stage == "fit" and self.compile_options.get("enabled") and not self.compiled:
            from tortoise_lite.models.compile import compile_denoiser

            opts = {k: v for k, v in self.compile_options.items() if k != "enabled"}
            self.compiled = compile_denoiser(self.model.denoiser, device=self.device, **opts)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Host-side work on the CPU batch, so the step never waits for the device for it.
        if isinstance(batch, Batch) and self.trainer is not None and self.trainer.training:
            self._batch_frames = int(batch.mel_lengths.sum())
            check = getattr(self.model, "check_batch", None)
            if check is not None and self.device.type != "cpu":  # on the CPU the loss checks itself
                check(batch)
        return batch

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        loss, logs = self.model.loss(batch)
        finite = bool(torch.isfinite(loss.detach()).item())
        # Every rank must take the same decision, or DDP's gradient all-reduce would hang.
        all_finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        bs = len(batch)
        if not all_finite:
            self.nonfinite_in_a_row += 1
            self.nonfinite_total += 1
            self.log("train/nonfinite_steps", float(self.nonfinite_total), batch_size=bs, sync_dist=False)
            msg = (
                f"non-finite loss at step {self.global_step} (batch ids {batch.ids[:4]}...): step skipped "
                f"({self.nonfinite_in_a_row} in a row, limit {self.max_nonfinite_steps})"
            )
            from lightning.pytorch.utilities import rank_zero_warn

            rank_zero_warn(msg)
            if self.nonfinite_in_a_row >= self.max_nonfinite_steps:
                raise NonFiniteLossError(
                    f"training stopped: {self.nonfinite_in_a_row} consecutive steps had a NaN/inf loss "
                    f"(last at step {self.global_step}); lower the learning rate or check the data. "
                    "A checkpoint was saved by OnExceptionCheckpoint."
                )
            return None  # Lightning skips backward and the optimizer step
        self.nonfinite_in_a_row = 0
        on_host = batch.mel_lengths.device.type == "cpu"
        self.frames_seen += self._batch_frames if not on_host else int(batch.mel_lengths.sum())
        # A progress-bar value is read on the host every step: on a GPU only on the logging steps.
        every = max(1, int(getattr(self.trainer, "log_every_n_steps", 1) or 1))
        bar = on_host or (self.global_step + 1) % every == 0
        self.log("train/loss", loss.detach(), prog_bar=bar, batch_size=bs)
        for k, v in logs.items():
            if k == "loss":
                continue
            v = v.detach().float().mean() if isinstance(v, torch.Tensor) else float(v)
            self.log(f"train/{k}", v, batch_size=bs)
        self.log("train/mel_frames", batch.mel_lengths.sum().float(), reduce_fx="sum", batch_size=bs)
        return loss

    # ---- validation ------------------------------------------------------------------------------
    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        # One item at a time with a generator seeded by its id: the loss is a property of the
        # item and the weights, identical for any batch size or number of ranks.
        for i in range(len(batch)):
            item = _select(batch, i)
            seed = (self.val_seed * 1_000_003 + _stable_hash(item.ids[0])) % (2**63 - 1)
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                loss, _ = self.model.loss(item)
            if torch.isfinite(loss):
                self.val_loss.update(loss.detach().float())
        self.log("val/loss", self.val_loss, prog_bar=True, batch_size=len(batch))

    # ---- optimization ----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params, **self._fused_kwargs())
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        try:
            scheduler = self.scheduler_factory(optimizer, total_steps=total)
        except TypeError:
            scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _fused_kwargs(self) -> dict[str, Any]:
        """``{"fused": True}`` for Adam/AdamW on CUDA when the config chose no implementation."""
        f = self.optimizer_factory
        func, given = getattr(f, "func", None), getattr(f, "keywords", {}) or {}
        if self.device.type != "cuda" or func not in (torch.optim.AdamW, torch.optim.Adam):
            return {}
        if given.get("fused") is not None or given.get("foreach") is not None:
            return {}
        return {"fused": True}

    # ---- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.metadata:
            checkpoint[META_KEY] = self.metadata
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        checkpoint["rng_state"] = rng
        checkpoint["nonfinite"] = {"in_a_row": self.nonfinite_in_a_row, "total": self.nonfinite_total}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Keep the LR-lambda fields built from this run's config (e.g. total_steps from a raised
        # max_steps); the scheduler's step counter is still restored.
        for sched in checkpoint.get("lr_schedulers", []):
            if "lr_lambdas" in sched:  # LambdaLR skips None entries when loading
                sched["lr_lambdas"] = [None] * len(sched["lr_lambdas"])
        self._rng_to_restore = checkpoint.get("rng_state")
        nf = checkpoint.get("nonfinite", {})
        self.nonfinite_in_a_row = int(nf.get("in_a_row", 0))
        self.nonfinite_total = int(nf.get("total", 0))

    def on_train_start(self) -> None:
        # The optimizer state restores the LR the old schedule had set; recompute it from this run's
        # schedule (equal unless max_steps or the schedule changed between the runs).
        for sched_cfg in self.trainer.lr_scheduler_configs:
            sched = sched_cfg.scheduler
            if isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
                for group, base, fn in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
                    group["lr"] = base * fn(sched.last_epoch)
        if self._rng_to_restore is not None:
            torch.set_rng_state(self._rng_to_restore["torch"].cpu())
            if "cuda" in self._rng_to_restore and self.device.type == "cuda":
                torch.cuda.set_rng_state(self._rng_to_restore["cuda"].cpu(), self.device)
            self._rng_to_restore = None


def _stable_hash(s: str) -> int:
    """A hash of ``s`` that is the same in every process (``hash()`` is salted per process)."""
    import zlib

    return zlib.crc32(s.encode("utf-8"))


def _select(batch: Batch, i: int) -> Batch:
    """Item ``i`` of a batch as a batch of one, trimmed to its own length.

    Trimmed to exactly its frames (the U-Nets pad time internally), so the item, and the noise its
    validation loss draws, are the same whatever batch it came in: a length rounded up to a multiple that
    depended on the batch's padded length (e.g. 32 vs 64 with ``pad_to_multiple=32``) drew different noise
    for the same item on 1 and on 2 ranks."""
    T = int(batch.mel_lengths[i])
    Lt = int(batch.token_lengths[i])
    keep = T

    def cut(x: torch.Tensor | None, n: int | None) -> torch.Tensor | None:
        if x is None:
            return None
        x = x[i : i + 1]
        return x[..., :n] if n is not None else x

    return Batch(
        mel=cut(batch.mel, keep),
        mel_lengths=batch.mel_lengths[i : i + 1],
        mel_mask=cut(batch.mel_mask, keep),
        tokens=cut(batch.tokens, Lt),
        token_lengths=batch.token_lengths[i : i + 1],
        token_mask=cut(batch.token_mask, Lt),
        durations=cut(batch.durations, Lt),
        speaker=cut(batch.speaker, None),
        ref_mel=cut(batch.ref_mel, None),
        ref_lengths=cut(batch.ref_lengths, None),
        text_embedding=None if batch.text_embedding is None else batch.text_embedding[i : i + 1],
        text_embedding_mask=None
        if batch.text_embedding_mask is None
        else batch.text_embedding_mask[i : i + 1],
        texts=batch.texts[i : i + 1],
        ids=batch.ids[i : i + 1],
    )
