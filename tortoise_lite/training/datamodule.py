"""``MelDataModule``: source -> prepare (validated, cached mels, MelStats) -> bucketed, DDP-aware loaders."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from tortoise_lite.audio import MelSpec, MelStats
from tortoise_lite.data.batch import Batch
from tortoise_lite.data.dataset import MelCollate, MelDataset
from tortoise_lite.data.preparation import PreparedDataset, PrepareLimits, prepare_dataset, view_dir
from tortoise_lite.data.sampler import LengthBucketBatchSampler
from tortoise_lite.data.sources import DataSource
from tortoise_lite.text.tokenizers import Tokenizer


class MelDataModule(L.LightningDataModule):
    """Batches of ``Batch`` for training and validation.

    Args:
        source: where the items come from (``CorpusSource``, ``ManifestSource``).
        mel: the MelSpec mels are computed (and cached) with.
        tokenizer: turns texts into token ids (its vocabulary goes into the model).
        batch_size / max_frames: items per batch, and/or a cap on padded frames per batch.
        val_fraction: share of items held out for validation (at least one item when > 0).
        num_workers: DataLoader workers.
        seed: split and shuffle seed (shuffles are also seeded by the epoch).
        limits: what prepare accepts (min/max seconds, silence level).
        use_durations: put corpus durations into ``Batch.durations`` when the items have them.
        pad_to_multiple: round padded mel length up to a multiple (U-Net downsampling).
        bucket_batches: batches' worth of items sorted together by length.
        progress: show rich progress bars while generating/preparing.
        references: reference clips per item (``Batch.ref_mel``) for voice models; 0 = none. They are
            windows of other training utterances of the item's speaker (``MelDataset``).
        reference_frames: the longest reference window, in frames.

    Rank and world size come from the trainer (DDP): each rank gets disjoint batches, the same number
    of them, and every item is seen once per epoch across ranks. Use the trainer with
    ``use_distributed_sampler=False`` (this module shards itself). ``state_dict`` stores the epoch and
    the batches already consumed, so a resumed run continues the same data order.
    """

    def __init__(
        self,
        source: DataSource,
        mel: MelSpec,
        tokenizer: Tokenizer,
        batch_size: int | None = 16,
        max_frames: int | None = None,
        val_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
        limits: PrepareLimits | None = None,
        use_durations: bool = True,
        pad_to_multiple: int = 1,
        bucket_batches: int = 32,
        progress: bool = True,
        references: int = 0,
        reference_frames: int = 192,
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction={val_fraction} must be in [0, 1)")
        self.source = source
        self.mel = mel
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_frames = max_frames
        self.val_fraction = val_fraction
        self.num_workers = num_workers
        self.seed = seed
        self.limits = limits or PrepareLimits()
        self.use_durations = use_durations
        self.pad_to_multiple = pad_to_multiple
        self.bucket_batches = bucket_batches
        self.progress = progress
        if references < 0 or reference_frames < 1:
            raise ValueError(
                f"references={references} must be >= 0 and reference_frames={reference_frames} >= 1"
            )
        self.references = int(references)
        self.reference_frames = int(reference_frames)
        self.prepared: PreparedDataset | None = None
        self.train_set: MelDataset | None = None
        self.val_set: MelDataset | None = None
        self._epoch = 0  # position in the training batch stream: data epoch ...
        self._batches_seen = 0  # ... and batches of it trained (see data_position)
        self._epoch_batches: dict[int, int] = {}  # batches per rank of each data epoch (cached)
        self._train_sampler: LengthBucketBatchSampler | None = None

    # ---- preparation ------------------------------------------------------------------------------
    def _prepare(self) -> PreparedDataset:
        return prepare_dataset(
            self.source.items(self.mel),
            self.mel,
            self.tokenizer,
            self.source.prepare_dir(self.mel),
            limits=self.limits,
            progress=self.progress,
        )

    def prepare_data(self) -> None:
        """Generate the corpus if needed and prepare (once per node; cached, resumable)."""
        self.prepared = self._prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.prepared is None:
            view = view_dir(self.source.prepare_dir(self.mel), self.mel, self.tokenizer)
            try:
                self.prepared = PreparedDataset.load(view)
            except FileNotFoundError:
                self.prepared = self._prepare()
        n = len(self.prepared.entries)
        order = list(range(n))
        random.Random(self.seed).shuffle(order)
        n_val = 0 if self.val_fraction == 0 or n < 2 else max(1, round(self.val_fraction * n))
        val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
        speakers = self.prepared.speakers
        refs = {
            "references": self.references,
            "reference_frames": self.reference_frames,
            "reference_pool": train_idx,  # references come from training audio only
            "seed": self.seed,
        }
        self.train_set = MelDataset(self.prepared, train_idx, self.use_durations, speakers, **refs)
        self.val_set = (
            MelDataset(self.prepared, val_idx, self.use_durations, speakers, **refs) if n_val else None
        )

    # ---- what models need from the data -------------------------------------------------------------
    @property
    def stats(self) -> MelStats:
        self._require()
        return self.prepared.stats

    @property
    def speakers(self) -> list[str]:
        self._require()
        return self.prepared.speakers

    @property
    def n_speakers(self) -> int:
        return len(self.speakers)

    def voice_references(self, clips: int = 3) -> dict[str, list[torch.Tensor]]:
        """A few reference windows (raw log-mel (n_mels, <= reference_frames)) of every training speaker:
        what a voice model's checkpoint keeps so that its trained voices can be named at inference."""
        self._require()
        found: dict[str, list[torch.Tensor]] = {}
        ds = self.train_set
        for i in range(len(ds)):
            e = ds.entry(i)
            if e.speaker is None or len(found.setdefault(e.speaker, [])) >= clips:
                continue
            found[e.speaker].append(ds._load_mel(e)[:, : self.reference_frames].clone())
        return {s: found[s] for s in self.speakers if s in found}

    def heldout_prompts(self) -> list[str]:
        return self.source.heldout_prompts(self.mel)

    def _require(self) -> None:
        if self.prepared is None:
            self.setup()

    # ---- loaders ------------------------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def collate(self) -> MelCollate:
        return MelCollate(self.mel.log_floor, self.pad_to_multiple)

    def _loader(self, dataset: MelDataset, sampler: LengthBucketBatchSampler) -> DataLoader:
        # A generator of its own: without one, every iter() of a DataLoader (each epoch, each validation)
        # draws its workers' base seed from the global torch RNG, i.e. from the training noise stream, and a
        # resumed run (whose validation and epoch starts fall elsewhere relative to the checkpoint) would
        # draw different noise than an uninterrupted one. The datasets are deterministic, so the worker
        # seeds themselves do not matter.
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.collate(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        self._require()
        if self.train_set is None:
            self.setup()
        rank, world = self._rank_world()
        sampler = LengthBucketBatchSampler(
            self.train_set.lengths,
            batch_size=self.batch_size,
            max_frames=self.max_frames,
            shuffle=True,
            seed=self.seed,
            rank=rank,
            world_size=world,
            bucket_batches=self.bucket_batches,
        )
        self._train_sampler = sampler
        self._epoch_batches = {}
        return self._loader(self.train_set, _BatchStream(sampler, self.data_position))

    def val_dataloader(self) -> DataLoader | list:
        self._require()
        if self.val_set is None:
            return []
        rank, world = self._rank_world()
        world = min(world, len(self.val_set))
        sampler = LengthBucketBatchSampler(
            self.val_set.lengths,
            batch_size=self.batch_size,
            max_frames=self.max_frames,
            shuffle=False,
            seed=self.seed,
            rank=min(rank, world - 1),
            world_size=world,
        )
        return self._loader(self.val_set, sampler)

    # ---- resume ----------------------------------------------------------------------------------------
    # The training data is one stream of batches (data epoch 0's, then 1's, ...). The position in it is
    # (data epoch, batches of it trained), counted here for every batch that reaches the training step
    # and stored in every checkpoint; each new iterator starts from it (see _BatchStream). It does not
    # follow trainer.current_epoch: Lightning's epoch bookkeeping after a restart depends on where the
    # checkpoint was written (mid-epoch, at the last batch, after validation, at a max_steps stop).
    def data_position(self) -> tuple[int, int]:
        """``(epoch, batches)``: the data epoch training is in and how many of its batches were trained;
        a finished epoch is reported as the start of the next one."""
        sampler = self._train_sampler
        while sampler is not None:
            n = self._epoch_batches.get(self._epoch)
            if n is None:
                n = self._epoch_batches[self._epoch] = sampler.batches_per_rank(self._epoch)
            if n == 0 or self._batches_seen < n:
                break
            self._epoch, self._batches_seen = self._epoch + 1, self._batches_seen - n
        return self._epoch, self._batches_seen

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        trainer = self.trainer
        if trainer is not None and trainer.training:
            self._batches_seen += 1
            self.data_position()  # roll over to the next data epoch after its last batch
        return batch

    def state_dict(self) -> dict[str, Any]:
        epoch, batches = self.data_position()
        return {"seed": self.seed, "epoch": epoch, "batches_seen": batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if int(state_dict.get("seed", self.seed)) != self.seed:
            raise ValueError(
                f"the checkpoint's data seed {state_dict['seed']} differs from this run's seed {self.seed}; "
                "resume with the same data.seed to restore the data order"
            )
        self._epoch, self._batches_seen = int(state_dict["epoch"]), int(state_dict["batches_seen"])


class _BatchStream:
    """The training batch sampler as Lightning sees it: every ``iter()`` continues the data stream at
    ``position()`` (data epoch, batches of it already trained) and runs to the end of that data epoch.

    ``len()`` is a whole epoch's batch count, as for torchdata's ``StatefulDataLoader``: after a restart
    Lightning counts the batches of the epoch it restored as done and ends the epoch when that count plus
    the batches fetched reaches ``len()``; when its count and the stream disagree, the epoch ends early
    or by exhaustion and the next ``iter()`` continues the stream, so no batch is skipped or repeated.
    The batches are fixed when ``iter()`` is called. No ``batch_size``, ``sampler`` or ``set_epoch``
    attributes: Lightning then neither rebuilds this sampler nor sets its epoch.
    """

    def __init__(self, buckets: LengthBucketBatchSampler, position: Callable[[], tuple[int, int]]) -> None:
        self.buckets = buckets
        self.position = position

    def __iter__(self) -> Iterator[list[int]]:
        epoch, start = self.position()
        return iter(self.buckets.rank_batches(epoch, start))

    def __len__(self) -> int:
        return self.buckets.batches_per_rank(self.position()[0])
