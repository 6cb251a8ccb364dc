"""The training progress bar: by steps when the run is bounded by steps (issue 16: it read 'Epoch 0/-2')."""

from __future__ import annotations

import io
import re

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from tortoise_lite.training.callbacks import StepProgressBar


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(**trainer_kwargs) -> tuple[StepProgressBar, str]:
    data = DataLoader(TensorDataset(torch.randn(6, 2)), batch_size=2)  # 3 batches per epoch
    out = io.StringIO()
    bar = StepProgressBar(leave=True, console_kwargs={"file": out, "force_terminal": True, "width": 140})
    trainer = L.Trainer(
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
        val_check_interval=2,
        check_val_every_n_epoch=None,
        **trainer_kwargs,
    )
    trainer.fit(_Tiny(), data, data)
    return bar, re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())


def test_step_bounded_run_shows_steps_of_the_whole_run():
    bar, text = _fit(max_steps=7, max_epochs=-1)
    assert "/-2" not in text and "Epoch 0/" not in text
    assert "Step 7/7 · epoch 2" in text  # 7 steps = 2 epochs of 3 batches + 1
    task = bar.progress.tasks[bar.train_progress_bar_id]
    assert (task.total, task.completed) == (7, 7)  # one bar over all steps, not one per epoch
    assert [t for t in bar.progress.tasks if t.description.startswith("Step")] == [task]


def test_epoch_bounded_run_keeps_lightnings_bar():
    bar, text = _fit(max_epochs=2)
    assert "Epoch 1/1" in text and "Step" not in text
