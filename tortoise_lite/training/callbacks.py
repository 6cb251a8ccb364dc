"""Callbacks of the text-to-mel training app (everything else comes from Lightning itself).

``StepProgressBar``: Lightning's rich progress bar, over the steps of the run when it is bounded by steps.

``SampleCallback``: every N optimizer steps (and once at the end of training) synthesize a few prompts
with the EMA weights, vocode them with the configured vocoder and write ``.wav`` + mel ``.png`` files;
images and audio also go to TensorBoard when that is the logger. Runs on global rank zero only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.callbacks.weight_averaging import WeightAveraging


def averaged_model(trainer: L.Trainer, pl_module: L.LightningModule) -> torch.nn.Module:
    """The TextToMel holding the EMA weights when an EMA callback is active, else the live one."""
    for cb in trainer.callbacks:
        if isinstance(cb, WeightAveraging):
            avg = getattr(cb, "_average_model", None)  # Lightning's AveragedModel around a module copy
            if avg is not None:
                return avg.module.model
    return pl_module.model


def slug(text: str, n: int = 32) -> str:
    """A file-name-safe short form of a prompt."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return s[:n] or "prompt"


def mel_figure(mel: torch.Tensor, title: str = "") -> Any:
    """A matplotlib Figure of one ``(n_mels, T)`` log-mel (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    im = ax.imshow(mel.detach().float().cpu().numpy(), origin="lower", aspect="auto", interpolation="none")
    ax.set_xlabel("frame")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title[:80], fontsize=9)
    fig.colorbar(im, ax=ax, label="ln mel")
    fig.tight_layout()
    return fig


class SampleCallback(Callback):
    """Synthesize ``prompts`` every ``every_n_steps`` optimizer steps and at the end of training.

    Args:
        prompts: texts to synthesize (the datamodule's held-out prompts when empty/None).
        vocoder: a ``tortoise_lite.vocoders.Vocoder`` (Griffin-Lim by default in the configs).
        out_dir: where ``step_XXXXXX/`` (and ``final/``) folders of ``NN_prompt.wav`` / ``.png`` go.
        every_n_steps: 0 = only at the end.
        n_prompts: how many prompts to use at most.
        steps / guidance / seed: sampler settings for ``TextToMel.generate``.
        use_ema: synthesize with the EMA weights when an EMA callback is present.
    """

    def __init__(
        self,
        vocoder: torch.nn.Module,
        out_dir: str | Path,
        prompts: Sequence[str] | None = None,
        every_n_steps: int = 0,
        n_prompts: int = 3,
        steps: int | None = None,
        guidance: float = 1.0,
        seed: int = 0,
        use_ema: bool = True,
        at_end: bool = True,
    ) -> None:
        super().__init__()
        self.vocoder = vocoder
        self.out_dir = Path(out_dir)
        self.prompts = list(prompts or [])
        self.every_n_steps = int(every_n_steps)
        self.n_prompts = int(n_prompts)
        self.steps = steps
        self.guidance = float(guidance)
        self.seed = int(seed)
        self.use_ema = use_ema
        self.at_end = at_end
        self.written: list[Path] = []
        self._last_step = -1

    def _prompts(self, trainer: L.Trainer) -> list[str]:
        prompts = self.prompts
        if not prompts:
            dm = trainer.datamodule
            if dm is not None and hasattr(dm, "heldout_prompts"):
                prompts = list(dm.heldout_prompts())
            val = getattr(dm, "val_set", None) if dm is not None else None
            if not prompts and val is not None:  # user datasets: synthesize validation transcripts
                prompts = [val.entry(i).text for i in range(min(len(val), self.n_prompts))]
        return prompts[: self.n_prompts]

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self.synthesize(trainer, pl_module, f"step_{step:06d}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning's EMA callback has copied the average into the live model by now (or will: either
        # way averaged_model() returns the EMA weights while the callback exists).
        if self.at_end:
            self.synthesize(trainer, pl_module, "final")

    @torch.no_grad()
    def synthesize(self, trainer: L.Trainer, pl_module: L.LightningModule, tag: str) -> list[Path]:
        """Generate, vocode and write the prompts; returns the files written (empty off rank zero)."""
        self._last_step = trainer.global_step
        if not trainer.is_global_zero:
            return []
        prompts = self._prompts(trainer)
        if not prompts:
            return []
        from tortoise_lite.audio.io import save_wav

        model = averaged_model(trainer, pl_module) if self.use_ema else pl_module.model
        mel, lengths = model.generate(texts=prompts, steps=self.steps, guidance=self.guidance, seed=self.seed)
        mel = mel.float()
        vocoder = self.vocoder.to(mel.device)
        folder = self.out_dir / tag
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        import matplotlib.pyplot as plt

        tb = _tensorboard(trainer)
        for i, text in enumerate(prompts):
            m = mel[i, :, : int(lengths[i])]
            wav = vocoder(m[None], model.mel_spec)[0].float().cpu()
            name = f"{i:02d}_{slug(text)}"
            wav_path = folder / f"{name}.wav"
            save_wav(wav_path, wav, vocoder.sample_rate)
            fig = mel_figure(m, text)
            png_path = folder / f"{name}.png"
            fig.savefig(png_path)
            if tb is not None:
                tb.add_figure(f"samples/{i:02d}_mel", fig, global_step=trainer.global_step)
                peak = wav.abs().max().clamp_min(1e-8)
                tb.add_audio(
                    f"samples/{i:02d}_audio", (wav / peak)[None], trainer.global_step, vocoder.sample_rate
                )
                tb.add_text(f"samples/{i:02d}_text", text, trainer.global_step)
            plt.close(fig)
            written += [wav_path, png_path]
        self.written = written
        return written


def _tensorboard(trainer: L.Trainer) -> Any:
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class RecordItems(Callback):
    """Write the item ids of every training batch to ``out_dir/items_rank{R}.txt`` (one line per batch:
    ``epoch step id1 id2 ...``). An audit of the data order: which items each rank saw, and when."""

    def __init__(self, out_dir: str | Path) -> None:
        super().__init__()
        self.out_dir = Path(out_dir)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"items_rank{trainer.global_rank}.txt"
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{trainer.current_epoch} {trainer.global_step} {' '.join(batch.ids)}\n")


class StepProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``, except when training is bounded by steps (``max_epochs: -1`` with
    ``max_steps`` > 0, the configs' default): then one bar runs over the optimizer steps of the whole run,
    described as ``Step 250/1500 · epoch 13``. (Lightning's own bar reads ``Epoch 13/-2`` there, since it
    prints ``max_epochs - 1``, and starts a new bar every epoch, i.e. every few steps on a small corpus.)
    A resumed run's bar starts at the restored step."""

    def _by_steps(self) -> bool:
        trainer = self.trainer
        return (trainer.max_epochs is None or trainer.max_epochs < 0) and (trainer.max_steps or 0) > 0

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if self._by_steps() else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if not self._by_steps():
            return super()._get_train_description(current_epoch)
        trainer = self.trainer
        text = f"Step {trainer.global_step}/{trainer.max_steps} · epoch {current_epoch}"
        # As Lightning does: pad to the validation bar's description so the two line up without flicker.
        return f"{text:{len(self.validation_description)}}"

    def _initialize_train_progress_bar_id(self) -> None:
        super()._initialize_train_progress_bar_id()
        if self._by_steps() and self.progress is not None:
            self.progress.update(self.train_progress_bar_id, completed=self.trainer.global_step)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._by_steps():
            super().on_train_epoch_start(trainer, pl_module)
            return
        if self.is_disabled or self.progress is None:
            return
        if self.train_progress_bar_id is None:  # one bar for the whole run
            self._initialize_train_progress_bar_id()
        self._show_step(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if not self._by_steps():
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        if self.is_disabled:
            return
        if self.train_progress_bar_id is None:  # a mid-epoch resume skips on_train_epoch_start
            self._initialize_train_progress_bar_id()
        self._show_step(trainer)
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def _show_step(self, trainer: L.Trainer) -> None:
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(
                self.train_progress_bar_id,
                completed=trainer.global_step,
                description=self._get_train_description(trainer.current_epoch),
            )
            self.refresh()
