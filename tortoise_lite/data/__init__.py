"""Data: manifests, embedded corpora, prepare (validation, mel cache, statistics), datasets, samplers.

The LightningDataModule lives in ``tortoise_lite.training.datamodule`` (only ``training`` imports Lightning).
"""

from tortoise_lite.data.batch import Batch
from tortoise_lite.data.dataset import MelCollate, MelDataset, lengths_to_mask
from tortoise_lite.data.manifest import Item, ManifestError, load_manifest
from tortoise_lite.data.preparation import PreparedDataset, PrepareError, PrepareLimits, prepare_dataset
from tortoise_lite.data.sampler import LengthBucketBatchSampler

__all__ = [
    "Batch",
    "Item",
    "LengthBucketBatchSampler",
    "ManifestError",
    "MelCollate",
    "MelDataset",
    "PrepareError",
    "PrepareLimits",
    "PreparedDataset",
    "lengths_to_mask",
    "load_manifest",
    "prepare_dataset",
]
