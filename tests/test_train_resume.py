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
