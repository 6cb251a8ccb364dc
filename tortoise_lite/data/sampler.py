"""Length-bucketing batch sampler that works under DDP."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import torch


class LengthBucketBatchSampler:
    """Batches of similar-length items, shuffled per epoch, split disjointly over DDP ranks.

    Each epoch: a permutation seeded by ``(seed, epoch)``; chunks of ``bucket_batches`` batches' worth
    of items are sorted by length and cut into batches of ``batch_size`` items, or (when ``max_frames``
    is set) of as many items as fit ``max_frames`` padded frames; the batch order is shuffled. Batches
    go round-robin to the ranks. When the batch count is not a multiple of ``world_size`` the largest
    batches are split in two until it is, so every rank gets the same number of steps (DDP needs that)
    and every item is used exactly once per epoch across ranks (no padding by repetition, no drop),
    unless ``drop_last`` asks to drop the remainder batches instead.

    All ranks must use the same ``seed`` and ``epoch`` (Lightning calls ``set_epoch``).

    Resume: ``load_state_dict({"seed", "epoch", "start_batch"})`` makes the next iteration skip the
    first ``start_batch`` batches of that epoch. ``len()`` stays the whole epoch's batch count, as for
    torchdata's ``StatefulDataLoader``: Lightning restores how many batches of the epoch were already
    trained and stops the epoch when that count plus the batches fetched reaches ``len()``, so a length
    that shrank by ``start_batch`` would cut this and every later epoch short. A state with every batch
    of its epoch consumed is the start of the next epoch (see ``load_state_dict``).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int | None = 16,
        max_frames: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        bucket_batches: int = 32,
        drop_last: bool = False,
    ) -> None:
        if batch_size is None and max_frames is None:
            raise ValueError("give batch_size or max_frames (or both)")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        if len(lengths) < world_size:
            raise ValueError(f"{len(lengths)} items cannot be split over {world_size} ranks")
        if max_frames is not None and max(lengths) > max_frames:
            raise ValueError(
                f"an item has {max(lengths)} frames, more than max_frames={max_frames}; raise max_frames or"
                " lower max_seconds in prepare"
            )
        self.lengths = [int(x) for x in lengths]
        # Deliberately not named ``batch_size``: Lightning then refuses (asking for
        # ``use_distributed_sampler=False``) instead of rebuilding this sampler around a DistributedSampler.
        self.items_per_batch = batch_size
        self.max_frames = max_frames
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.bucket_batches = bucket_batches
        self.drop_last = drop_last
        self.epoch = 0
        self.start_batch = 0  # batches of the current epoch to skip (mid-epoch resume)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start_batch = 0
        self.epoch = int(epoch)

    def _cut(self, order: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        cur: list[int] = []
        longest = 0
        for i in order:
            n = self.lengths[i]
            full = self.items_per_batch is not None and len(cur) >= self.items_per_batch
            over = self.max_frames is not None and max(longest, n) * (len(cur) + 1) > self.max_frames
            if cur and (full or over):
                batches.append(cur)
                cur, longest = [], 0
            cur.append(i)
            longest = max(longest, n)
        if cur:
            batches.append(cur)
        return batches

    def all_batches(self, epoch: int | None = None) -> list[list[int]]:
        """Every batch of ``epoch`` (default: the current one) for all ranks (rank r takes positions r,
        r + world_size, ...)."""
        epoch = self.epoch if epoch is None else int(epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
        chunk = (
            self.items_per_batch or max(1, self.max_frames // max(1, max(self.lengths)))
        ) * self.bucket_batches
        batches: list[list[int]] = []
        for s in range(0, n, chunk):
            part = sorted(order[s : s + chunk], key=lambda i: (self.lengths[i], i))
            batches.extend(self._cut(part))
        if self.drop_last:
            batches = batches[: len(batches) - len(batches) % self.world_size]
        else:
            while len(batches) % self.world_size:
                # Split the batch with most items (ties: most frames) so counts per rank match.
                k = max(
                    range(len(batches)),
                    key=lambda j: (len(batches[j]), max(self.lengths[i] for i in batches[j])),
                )
                if len(batches[k]) < 2:
                    raise ValueError("cannot give every rank a batch: too few items for world_size")
                b = batches.pop(k)
                batches[k:k] = [b[: len(b) // 2], b[len(b) // 2 :]]
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[p] for p in perm]
        return batches

    def rank_batches(self, epoch: int, start: int = 0) -> list[list[int]]:
        """This rank's batches of ``epoch`` from its ``start``-th on."""
        return self.all_batches(epoch)[self.rank :: self.world_size][start:]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches(self.epoch, self.start_batch)

    def __len__(self) -> int:
        """Batches of the whole epoch for this rank (including the ``start_batch`` skipped on resume)."""
        return self.batches_per_rank()

    def batches_per_rank(self, epoch: int | None = None) -> int:
        """How many batches each rank gets in ``epoch`` (default: the current one). Constant with
        ``batch_size`` alone; with ``max_frames`` it can differ from epoch to epoch."""
        return len(self.all_batches(epoch)) // self.world_size

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "start_batch": self.start_batch}

    def load_state_dict(self, state: dict) -> None:
        """Continue after ``start_batch`` batches of ``epoch``. A finished epoch (``start_batch`` >= its
        batch count: a checkpoint written after the epoch's last step) becomes batch 0 of the next one, so
        the first iteration after a resume never comes out empty."""
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.start_batch = int(state.get("start_batch", 0))
        if self.start_batch < 0:
            raise ValueError(f"start_batch={self.start_batch} must be >= 0")
        per_epoch = len(self)
        if self.start_batch >= per_epoch > 0:
            if (
                self.start_batch > per_epoch
            ):  # e.g. resumed on fewer devices: the order cannot continue exactly
                warnings.warn(
                    f"start_batch={self.start_batch} but epoch {self.epoch} has {per_epoch} batches per rank (the"
                    " items, batch size or world size changed since the checkpoint): starting the next epoch",
                    stacklevel=2,
                )
            self.epoch, self.start_batch = self.epoch + 1, 0
