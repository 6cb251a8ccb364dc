"""Monotonic alignment search vs a brute-force dynamic program; duration helpers."""

from __future__ import annotations

import itertools

import pytest
import torch

from tortoise_lite.models.alignment import (
    durations_from_path,
    expand_by_durations,
    gaussian_log_likelihood,
    maximum_path,
    path_from_durations,
)
from tortoise_lite.models.duration import DurationPredictor, durations_from_log


def brute_force(lp: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Enumerate every split of T frames into L non-empty consecutive segments."""
    L, T = lp.shape
    best, best_b = -float("inf"), None
    for cuts in itertools.combinations(range(1, T), L - 1):
        b = (0, *cuts, T)
        s = sum(float(lp[j, b[j] : b[j + 1]].sum()) for j in range(L))
        if s > best:
            best, best_b = s, b
    path = torch.zeros(L, T)
    for j in range(L):
        path[j, best_b[j] : best_b[j + 1]] = 1
    return best, path


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_mas_equals_brute_force(backend):
    g = torch.Generator().manual_seed(0)
    tl = torch.tensor([5, 3, 1, 4, 5, 2, 6])
    fl = torch.tensor([9, 7, 3, 4, 8, 9, 10])
    lp = torch.randn(len(tl), 6, 10, generator=g) * 3
    path = maximum_path(lp, tl, fl, backend)
    for i in range(len(tl)):
        L, T = int(tl[i]), int(fl[i])
        score, ref = brute_force(lp[i, :L, :T])
        assert torch.equal(path[i, :L, :T], ref), i
        assert path[i].sum() == T and path[i, L:].sum() == 0 and path[i, :, T:].sum() == 0
        assert abs(float((path[i] * lp[i]).sum()) - score) < 1e-4


def test_backends_agree_on_larger_input():
    g = torch.Generator().manual_seed(1)
    lp = torch.randn(4, 12, 60, generator=g)
    tl, fl = torch.tensor([12, 7, 3, 10]), torch.tensor([60, 41, 3, 30])
    assert torch.equal(maximum_path(lp, tl, fl, "numba"), maximum_path(lp, tl, fl, "torch"))


def test_mas_rejects_fewer_frames_than_tokens():
    with pytest.raises(ValueError, match="fewer frames"):
        maximum_path(torch.zeros(1, 4, 3), torch.tensor([4]), torch.tensor([3]))


def test_mas_recovers_planted_alignment():
    """Frames generated from token means with known durations: MAS on the Gaussian likelihood finds them."""
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(1, 6, 8, generator=g) * 3
    dur = torch.tensor([[2, 5, 1, 3, 4, 2]])
    x = expand_by_durations(mu, dur) + 0.1 * torch.randn(1, 8, 17, generator=g)
    path = maximum_path(gaussian_log_likelihood(x, mu), torch.tensor([6]), torch.tensor([17]))
    assert torch.equal(durations_from_path(path), dur)


def test_gaussian_log_likelihood_matches_direct_formula():
    g = torch.Generator().manual_seed(3)
    x, mu = torch.randn(2, 5, 7, generator=g), torch.randn(2, 3, 5, generator=g)
    direct = torch.distributions.Normal(mu[:, :, :, None], 1.0).log_prob(x[:, None]).sum(2)
    torch.testing.assert_close(gaussian_log_likelihood(x, mu), direct, atol=1e-4, rtol=1e-5)


def test_path_and_expand():
    dur = torch.tensor([[1, 0, 2], [3, 1, 0]])
    p = path_from_durations(dur)
    assert p.shape == (2, 3, 4)
    assert torch.equal(durations_from_path(p), dur)
    h = torch.arange(6.0).view(2, 3, 1)
    assert expand_by_durations(h, dur)[0, 0].tolist() == [0.0, 2.0, 2.0, 0.0]


def test_duration_predictor_masks_and_length_scale():
    torch.manual_seed(0)
    dp = DurationPredictor(8, 16).eval()
    h = torch.randn(1, 5, 8)
    m1 = torch.ones(1, 5, dtype=torch.bool)
    hp = torch.cat([h, torch.randn(1, 3, 8)], 1)
    m2 = torch.cat([m1, torch.zeros(1, 3, dtype=torch.bool)], 1)
    a, b = dp(h, m1), dp(hp, m2)
    torch.testing.assert_close(a, b[:, :5], atol=1e-5, rtol=1e-5)
    assert b[:, 5:].abs().max() == 0
    log_d = torch.log1p(torch.tensor([[4.0, 0.2, 9.0, 0.0]]))
    mask = torch.tensor([[True, True, True, False]])
    assert durations_from_log(log_d, mask).tolist() == [[4, 1, 9, 0]]  # >= 1 frame per real token
    assert durations_from_log(log_d, mask, 2.0).tolist() == [[8, 1, 18, 0]]
