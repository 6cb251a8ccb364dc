"""``python -m tortoise_lite.prepare data=NAME [text=...] [mel=...]``: validate, cache mels, compute stats.

Prints where the prepared view is and a summary of the skipped items (the full report is in
``report.txt`` / ``report.json`` next to it). Safe to interrupt and re-run: finished mels are reused.
"""

from __future__ import annotations

import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from tortoise_lite.data.preparation import prepare_dataset
from tortoise_lite.paths import config_dir


def run(cfg: DictConfig) -> int:
    # Build only what prepare needs (not the LightningDataModule: no Lightning import, quicker start).
    data = cfg.data
    source = instantiate(data.source, _convert_="all")
    mel = instantiate(cfg.mel)
    tokenizer = instantiate(cfg.text.tokenizer, _convert_="all")
    limits = instantiate(data.limits) if data.get("limits") is not None else None
    if data.get("progress") is not None and hasattr(source, "progress"):
        source.progress = bool(data.progress)
    prepared = prepare_dataset(
        source.items(mel),
        mel,
        tokenizer,
        source.prepare_dir(mel),
        limits=limits,
        progress=bool(data.progress),
    )
    print((prepared.view / "report.txt").read_text().splitlines()[0])
    print(f"prepared view: {prepared.view}")
    print(f"report: {prepared.view / 'report.txt'}")
    print(
        f"stats: {prepared.view / 'stats.json'} (global mean {prepared.stats.global_mean:.3f}, "
        f"std {prepared.stats.global_std:.3f})"
    )
    if prepared.skipped:
        for s in prepared.skipped[: cfg.get("show_skipped", 20)]:
            print(f"  skipped [{s.reason}] {s.id}: {s.message}")
    return 0


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="prepare")
def main(cfg: DictConfig) -> int:
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
