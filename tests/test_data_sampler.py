import random

import pytest

from tortoise_lite.data.sampler import LengthBucketBatchSampler


def lengths(n=103, seed=0):
    rng = random.Random(seed)
    return [rng.randint(20, 400) for _ in range(n)]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_ranks_get_disjoint_equal_batches_covering_every_item_once(world):
    ls = lengths()
    per_rank = []
    for r in range(world):
        s = LengthBucketBatchSampler(ls, batch_size=8, seed=3, rank=r, world_size=world)
        s.set_epoch(2)
        per_rank.append(list(s))
        assert len(per_rank[-1]) == len(s)
    assert len({len(b) for b in per_rank}) == 1  # same number of steps on every rank
    flat = [i for batches in per_rank for b in batches for i in b]
    assert sorted(flat) == list(range(len(ls)))  # every item exactly once across ranks


def test_epoch_seeded_shuffle_and_bucketing():
    ls = lengths()
    s = LengthBucketBatchSampler(ls, batch_size=8, seed=0, bucket_batches=4)
    e0 = list(s)
    assert list(s) == e0  # same epoch, same order
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != e0 and sorted(map(sorted, e1)) != sorted(map(sorted, e0))
    # bucketing: padded frames are far below those of random batches
    pad = sum(max(ls[i] for i in b) * len(b) - sum(ls[i] for i in b) for b in e0)
    rng = random.Random(0)
    idx = list(range(len(ls)))
    rng.shuffle(idx)
    rand = [idx[k : k + 8] for k in range(0, len(idx), 8)]
    pad_rand = sum(max(ls[i] for i in b) * len(b) - sum(ls[i] for i in b) for b in rand)
    assert pad < 0.5 * pad_rand


def test_max_frames_caps_padded_batch_size():
    ls = lengths()
    s = LengthBucketBatchSampler(ls, batch_size=None, max_frames=1200, seed=1)
    batches = list(s)
    assert all(max(ls[i] for i in b) * len(b) <= 1200 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(ls)))
    with pytest.raises(ValueError, match="more than max_frames"):
        LengthBucketBatchSampler(ls, batch_size=None, max_frames=100)


def test_resume_mid_epoch_continues_the_same_order():
    ls = lengths()
    s = LengthBucketBatchSampler(ls, batch_size=8, seed=5, rank=1, world_size=2)
    s.set_epoch(3)
    full = list(s)
    resumed = LengthBucketBatchSampler(ls, batch_size=8, seed=0, rank=1, world_size=2)
    resumed.load_state_dict({"seed": 5, "epoch": 3, "start_batch": 2})
    resumed.set_epoch(3)  # Lightning calls this at the start of the resumed epoch
    # len() stays the epoch's: Lightning adds the batches it restored as done (a shrunk length cut every
    # later epoch short, issue 16).
    assert list(resumed) == full[2:] and len(resumed) == len(full)
    resumed.set_epoch(4)
    assert len(list(resumed)) == len(full) == len(resumed)
    # A state with the whole epoch consumed (checkpoint after its last step) is the next epoch's start.
    at_end = LengthBucketBatchSampler(ls, batch_size=8, seed=5, rank=1, world_size=2)
    at_end.load_state_dict({"seed": 5, "epoch": 3, "start_batch": len(full)})
    s.set_epoch(4)
    assert (at_end.epoch, at_end.start_batch) == (4, 0) and list(at_end) == list(s)


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank=2"):
        LengthBucketBatchSampler([1, 2, 3], rank=2, world_size=2)
    with pytest.raises(ValueError, match="cannot be split over 4 ranks"):
        LengthBucketBatchSampler([1, 2, 3], world_size=4)
