"""Resume: an interrupted run continued with ckpt_path=last ends where an uninterrupted run ends
(same step, same weights, optimizer, EMA and data order)."""

from __future__ import annotations

import pytest
import torch
from _train_utils import train_tiny

from tortoise_lite.checkpoint import read_checkpoint


def test_resume_matches_uninterrupted_run(tmp_path):
    common = ["checkpoint.every_n_train_steps=2", "trainer.val_check_interval=2", "record_items=true"]
    full = train_tiny(tmp_path / "full", extra=["trainer.max_steps=4", *common])
    train_tiny(tmp_path / "split", extra=["trainer.max_steps=2", *common])
    # A fresh run into a folder with checkpoints is refused (it would silently resume otherwise).
    with pytest.raises(FileExistsError, match="ckpt_path=last"):
        train_tiny(tmp_path / "split", extra=["trainer.max_steps=4", *common])
    resumed = train_tiny(tmp_path / "split", extra=["trainer.max_steps=4", "ckpt_path=last", *common])
    assert full.global_step == resumed.global_step == 4
    a, b = read_checkpoint(full.last_checkpoint), read_checkpoint(resumed.last_checkpoint)
    for key in ("state_dict", "current_model_state"):  # EMA and raw weights
        for name, t in a[key].items():
            torch.testing.assert_close(b[key][name], t, rtol=1e-5, atol=1e-6, msg=f"{key}/{name}")
    sa, sb = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    for k in sa:
        torch.testing.assert_close(sb[k]["exp_avg_sq"], sa[k]["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    # Data order: the resumed run trained on the same batches, in the same order.
    seen_full = (tmp_path / "full" / "items_rank0.txt").read_text().splitlines()
    seen_split = (tmp_path / "split" / "items_rank0.txt").read_text().splitlines()
    assert [line.split()[2:] for line in seen_split] == [line.split()[2:] for line in seen_full]


@pytest.mark.parametrize("split", [1, 3])
def test_resume_mid_epoch_and_at_epoch_end_continues_the_batch_stream(tmp_path, split):
    """10 items in batches of 4: 3 batches per epoch. Stopping after step 3 leaves a checkpoint written at
    the last batch of an epoch (issue 16: the resumed run then had zero batches and stopped there, exit 0);
    stopping after step 1 leaves one mid-epoch (every later epoch was cut to 2 batches). Constant LR, so
    the split run's schedule equals the uninterrupted one's."""
    common = ["checkpoint.every_n_train_steps=1", "record_items=true", "optim.scheduler=null"]
    full = train_tiny(tmp_path / "full", extra=["trainer.max_steps=8", *common])
    train_tiny(tmp_path / "split", extra=[f"trainer.max_steps={split}", *common])
    resumed = train_tiny(tmp_path / "split", extra=["trainer.max_steps=8", "ckpt_path=last", *common])
    assert resumed.global_step == full.global_step == 8
    seen_full = (tmp_path / "full" / "items_rank0.txt").read_text().splitlines()
    seen_split = (tmp_path / "split" / "items_rank0.txt").read_text().splitlines()
    assert [line.split()[2:] for line in seen_split] == [line.split()[2:] for line in seen_full]
    a, b = read_checkpoint(full.last_checkpoint), read_checkpoint(resumed.last_checkpoint)
    assert a["MelDataModule"] == b["MelDataModule"] == {"seed": 0, "epoch": 2, "batches_seen": 2}
    for key in ("state_dict", "current_model_state"):
        for name, t in a[key].items():
            assert torch.equal(b[key][name], t), f"{key}/{name}"
