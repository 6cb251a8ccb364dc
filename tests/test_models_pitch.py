"""PitchPredictor and the smoothing of pitch tracks."""

from __future__ import annotations

import pytest
import torch

from tortoise_lite.models.pitch import PitchPredictor, smooth_log_f0


def test_smoothing_averages_voiced_frames_only():
    g = torch.Generator().manual_seed(0)
    contour = torch.linspace(-0.5, 0.5, 40)[None]  # a gliding pitch (log2 units)
    jitter = 0.05 * torch.randn(1, 40, generator=g)
    voiced = torch.ones(1, 40, dtype=torch.bool)
    voiced[:, 18:22] = False  # a pause, whose predicted values are garbage
    noisy = torch.where(voiced, contour + jitter, torch.full_like(contour, 9.0))
    smooth = smooth_log_f0(noisy, voiced, 7)
    # unvoiced frames neither change nor pull their neighbours towards their garbage
    assert torch.equal(smooth[~voiced], noisy[~voiced])
    err_before = (noisy - contour)[voiced].abs().mean()
    err_after = (smooth - contour)[voiced].abs().mean()
    assert err_after < 0.6 * err_before
    # a steady pitch stays where it is; a window of 1 is the identity
    flat = torch.full((2, 12), 0.3)
    torch.testing.assert_close(smooth_log_f0(flat, torch.ones(2, 12, dtype=torch.bool), 5), flat)
    assert torch.equal(smooth_log_f0(noisy, voiced, 1), noisy)
    with pytest.raises(ValueError, match="odd"):
        smooth_log_f0(noisy, voiced, 4)


def test_predictor_ignores_padding():
    torch.manual_seed(0)
    model = PitchPredictor(in_dim=8).eval()
    frames = torch.randn(1, 8, 20)
    mask = torch.ones(1, 20, dtype=torch.bool)
    f0, v = model(frames, mask)
    padded = torch.cat([frames, 5 * torch.randn(1, 8, 6)], -1)
    pmask = torch.cat([mask, torch.zeros(1, 6, dtype=torch.bool)], -1)
    f0p, vp = model(padded, pmask)
    torch.testing.assert_close(f0p[:, :20], f0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(vp[:, :20], v, atol=1e-5, rtol=1e-5)
    assert f0.shape == v.shape == (1, 20)
