"""Evaluation of text-to-mel checkpoints (``python -m tortoise_lite.evaluate``).

* :mod:`~tortoise_lite.evaluation.references`: reference renderings of a recipe's held-out prompts
  (eSpeak speech with exact phoneme durations, tones with exact note boundaries);
* :mod:`~tortoise_lite.evaluation.quality`: objective metrics per item and the compute-vs-quality sweep
  (every metric against NFE for each sampler);
* :mod:`~tortoise_lite.evaluation.spectral`: per-band error along the sampling trajectory and the training
  loss per band by noise level;
* :mod:`~tortoise_lite.evaluation.plots`: the matplotlib figures (Agg canvas);
* :mod:`~tortoise_lite.evaluation.cli`: what the synthesize/evaluate entry points share.
"""

from tortoise_lite.evaluation.quality import METRICS, compute_vs_quality, evaluate_setting, item_metrics
from tortoise_lite.evaluation.references import Reference, build_references, heldout_prompts
from tortoise_lite.evaluation.spectral import band_edges, loss_by_noise_level, spectral_bands_report

__all__ = [
    "METRICS",
    "Reference",
    "band_edges",
    "build_references",
    "compute_vs_quality",
    "evaluate_setting",
    "heldout_prompts",
    "item_metrics",
    "loss_by_noise_level",
    "spectral_bands_report",
]
