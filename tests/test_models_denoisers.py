"""Denoisers (1-D and 2-D U-Nets): shapes, masks, gradients, guidance dropout, overfitting, bf16, compile."""

from __future__ import annotations

import time

import pytest
import torch

from tortoise_lite.models.conditioning import Cond
from tortoise_lite.models.unet1d import UNet1D
from tortoise_lite.models.unet2d import UNet2D

N_MELS = 16
CTX = 24


def tiny(cls, mode: str, **kw):
    torch.manual_seed(0)
    if cls is UNet1D:
        base = dict(channels=(16, 32), attn_depth=1, heads=2, groups=4)
    else:
        base = dict(channels=(8, 16), attn_dim=32, attn_depth=1, heads=2, groups=4)
    base.update(kw)
    return cls(n_mels=N_MELS, cond_mode=mode, cond_channels=12, context_dim=CTX, **base)


def randomize_zero_inits(model: torch.nn.Module) -> None:
    """Zero-initialized output layers would make every output 0 and every mask test vacuous."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 0 and p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def make_cond(mode: str, b: int, T: int, L: int = 5, frame_len=None, tok_len=None, g=None) -> Cond:
    g = g or torch.Generator().manual_seed(2)
    frame_len = frame_len or [T] * b
    tok_len = tok_len or [L] * b
    fm = torch.arange(T)[None] < torch.tensor(frame_len)[:, None]
    if mode == "aligned":
        return Cond(frames=torch.randn(b, 12, T, generator=g), frame_mask=fm)
    tm = torch.arange(L)[None] < torch.tensor(tok_len)[:, None]
    return Cond(tokens=torch.randn(b, L, CTX, generator=g), token_mask=tm, frame_mask=fm)


CASES = [(UNet1D, "aligned"), (UNet1D, "cross_attention"), (UNet2D, "aligned"), (UNet2D, "cross_attention")]
IDS = [f"{c.__name__}-{m}" for c, m in CASES]


@pytest.mark.parametrize("cls,mode", CASES, ids=IDS)
@pytest.mark.parametrize("T", [1, 7, 33])
def test_shapes_any_length(cls, mode, T):
    model = tiny(cls, mode).eval()
    randomize_zero_inits(model)
    x = torch.randn(2, N_MELS, T)
    y = model(x, torch.rand(2), make_cond(mode, 2, T))
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("cls,mode", CASES, ids=IDS)
def test_padding_never_changes_real_frames(cls, mode):
    """Item alone at its own length == the same item inside a padded batch (garbage in the padding)."""
    model = tiny(cls, mode).eval()
    randomize_zero_inits(model)
    g = torch.Generator().manual_seed(3)
    T, L = 21, 4
    x = torch.randn(1, N_MELS, T, generator=g)
    t = torch.rand(1, generator=g)
    alone = make_cond(mode, 1, T, L=L, g=torch.Generator().manual_seed(4))
    y_alone = model(x, t, alone)
    Tp, Lp = 40, 9
    xp = torch.randn(2, N_MELS, Tp, generator=g) * 5  # garbage everywhere, real part copied below
    xp[0, :, :T] = x[0]
    padded = make_cond(mode, 2, Tp, L=Lp, frame_len=[T, Tp], tok_len=[L, Lp], g=g)
    if mode == "aligned":
        padded.frames[0, :, :T] = alone.frames[0]
        padded.frames[0, :, T:] = 7.0
    else:
        padded.tokens[0, :L] = alone.tokens[0]
        padded.tokens[0, L:] = 7.0
    y_pad = model(xp, torch.cat([t, torch.rand(1)]), padded)
    torch.testing.assert_close(y_pad[0, :, :T], y_alone[0], atol=2e-5, rtol=1e-4)
    assert y_pad[0, :, T:].abs().max() == 0  # outputs are zero at padded frames
    assert y_alone.abs().mean() > 1e-3  # non-trivial output (the comparison is not vacuous)


@pytest.mark.parametrize("cls,mode", CASES, ids=IDS)
def test_gradients_reach_every_parameter(cls, mode):
    model = tiny(cls, mode, n_speakers=3, cond_drop_prob=0.5).train()
    torch.manual_seed(5)  # with 8 items and p=0.5 both the null and real conditions are used
    cond = make_cond(mode, 8, 12)
    cond.speaker = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    # zero-initialized output layers pass no gradient upstream at init: give them values first
    randomize_zero_inits(model)
    out = model(torch.randn(8, N_MELS, 12), torch.rand(8), cond)
    (out - torch.randn_like(out)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient for: {missing}"


@pytest.mark.parametrize("cls,mode", CASES, ids=IDS)
def test_guidance_dropout_uses_learned_null(cls, mode):
    model = tiny(cls, mode, cond_drop_prob=1.0)
    randomize_zero_inits(model)
    x, t = torch.randn(3, N_MELS, 10), torch.rand(3)
    c1 = make_cond(mode, 3, 10, g=torch.Generator().manual_seed(10))
    c2 = make_cond(mode, 3, 10, g=torch.Generator().manual_seed(11))
    model.train()
    y_drop1, y_drop2 = model(x, t, c1), model(x, t, c2)
    torch.testing.assert_close(y_drop1, y_drop2)  # condition content is ignored when dropped
    model.eval()  # no random dropout in eval: explicit null() reproduces the training-time drop
    torch.testing.assert_close(model(x, t, c1.null()), y_drop1)
    assert (model(x, t, c1) - y_drop1).abs().max() > 1e-4
    # a batch mixing cond and null in one pass equals the two separate passes
    both = model(torch.cat([x, x]), torch.cat([t, t]), c1.cat(c1.null()))
    torch.testing.assert_close(both[:3], model(x, t, c1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(both[3:], y_drop1, atol=1e-5, rtol=1e-4)


def test_dropout_probability_is_respected():
    model = tiny(UNet1D, "aligned", cond_drop_prob=0.3).train()
    torch.manual_seed(0)
    cond = make_cond("aligned", 4000, 2)
    rate = model.cond.drop_mask(cond).float().mean().item()
    assert abs(rate - 0.3) < 0.03


def test_speaker_embedding_changes_output_and_checks_range():
    model = tiny(UNet1D, "aligned", n_speakers=2).eval()
    randomize_zero_inits(model)
    x, t = torch.randn(1, N_MELS, 8), torch.rand(1)
    c = make_cond("aligned", 1, 8)
    c.speaker = torch.tensor([0])
    y0 = model(x, t, c)
    c.speaker = torch.tensor([1])
    assert (model(x, t, c) - y0).abs().max() > 1e-5
    c.speaker = torch.tensor([2])
    with pytest.raises(ValueError, match="speaker"):
        model(x, t, c)


def test_bad_inputs_have_clear_errors():
    model = tiny(UNet1D, "aligned")
    with pytest.raises(ValueError, match="n_mels"):
        model(torch.randn(1, N_MELS + 1, 8), torch.rand(1), make_cond("aligned", 1, 8))
    with pytest.raises(ValueError, match="cond_channels"):
        model(
            torch.randn(1, N_MELS, 8),
            torch.rand(1),
            Cond(frames=torch.randn(1, 3, 8), frame_mask=torch.ones(1, 8, dtype=torch.bool)),
        )


@pytest.mark.parametrize("cls", [UNet1D, UNet2D])
def test_overfits_one_batch(cls):
    """Regress a fixed (x_t, t, cond) -> target map: the loss must fall at least 10x."""
    torch.manual_seed(0)
    model = tiny(cls, "aligned", cond_drop_prob=0.0).train()
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(4, N_MELS, 16, generator=g), torch.rand(4, generator=g)
    cond = make_cond("aligned", 4, 16, frame_len=[16, 16, 12, 9])
    target = torch.randn(4, N_MELS, 16, generator=g) * cond.frame_mask[:, None].float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = (model(x, t, cond) - target).square().mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, (first, loss.item())


@pytest.mark.parametrize("cls", [UNet1D, UNet2D])
def test_bf16_autocast_cpu(cls):
    model = tiny(cls, "cross_attention").eval()
    randomize_zero_inits(model)
    x, t = torch.randn(2, N_MELS, 13), torch.rand(2)
    cond = make_cond("cross_attention", 2, 13, frame_len=[13, 9])
    ref = model(x, t, cond)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x, t, cond)
    assert torch.isfinite(y).all()
    err = (y.float() - ref).abs().mean() / ref.abs().mean()
    assert err < 0.05, err.item()
    assert y[1, :, 9:].abs().max() == 0


@pytest.mark.slow
def test_torch_compile_smoke():
    model = tiny(UNet1D, "aligned").eval()
    randomize_zero_inits(model)
    x, t = torch.randn(2, N_MELS, 16), torch.rand(2)
    cond = make_cond("aligned", 2, 16, frame_len=[16, 11])
    ref = model(x, t, cond)
    t0 = time.time()
    compiled = torch.compile(model)
    y = compiled(x, t, cond)
    print(f"compile+run {time.time() - t0:.1f}s")
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-3)
