"""A dataset mixing good items with broken ones trains: every bad item reported once with its reason,
every good item (odd formats converted) used for training."""

import json

from _train_utils import train_tiny
from test_data_prepare import make_mixed_dataset


def test_mixed_good_and_bad_dataset_trains_on_every_good_item(tmp_path):
    expected_bad = make_mixed_dataset(tmp_path / "ds")
    good = {"good_16bit", "good_8bit", "good_24bit", "good_float", "good_stereo", "good_48k"}
    out = tmp_path / "run"
    result = train_tiny(
        out,
        "folder",
        [
            f"data.root={tmp_path / 'ds'}",
            f"data.source.prepare_dir={tmp_path / 'prepared'}",
            "data.val_fraction=0",  # every good item must reach training
            "data.batch_size=2",
            "data.limits.max_seconds=2.0",  # the 3 s item stands for a file that is too long
            "record_items=true",
            "trainer.max_steps=6",  # two epochs of three batches
        ],
    )
    assert result.global_step == 6 and result.last_checkpoint.is_file()

    reports = list(tmp_path.rglob("report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    reasons = {s["id"]: s["reason"] for s in report["skipped"]}
    assert reasons == expected_bad  # each bad item exactly once, with its reason
    assert len(report["skipped"]) == len(expected_bad)
    assert all(s["message"] for s in report["skipped"])

    seen = set()
    for line in (out / "items_rank0.txt").read_text().splitlines():
        seen.update(line.split()[2:])
    assert seen == good  # every good item trained on (8-bit, 24-bit, float, stereo, 48 kHz converted)
