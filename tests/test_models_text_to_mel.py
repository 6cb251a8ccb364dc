"""TextToMel: loss in both modes (MAS and exact durations), generation shapes, seeds and batch independence."""

from __future__ import annotations

import functools

import pytest
import torch

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.data.batch import Batch
from tortoise_lite.diffusion.objectives import Objective
from tortoise_lite.diffusion.samplers import Sampler
from tortoise_lite.diffusion.schedules import CosineSchedule
from tortoise_lite.models.alignment import expand_by_durations
from tortoise_lite.models.text_to_mel import TextToMel
from tortoise_lite.models.unet1d import UNet1D
from tortoise_lite.models.unet2d import UNet2D
from tortoise_lite.text.encoders import LearnedTextEncoder
from tortoise_lite.text.tokenizers import CharTokenizer

N_MELS = 16


def build(mode: str = "aligned", denoiser=UNet1D, **kw) -> TextToMel:
    torch.manual_seed(0)
    den_kw = (
        dict(channels=(16, 32), attn_depth=1, heads=2, groups=4)
        if denoiser is UNet1D
        else dict(channels=(8, 16), attn_dim=32, attn_depth=1, heads=2, groups=4)
    )
    return TextToMel(
        denoiser=functools.partial(denoiser, **den_kw),
        objective=Objective(CosineSchedule(), prediction="v"),
        text_encoder=functools.partial(LearnedTextEncoder, dim=24, depth=1, heads=2),
        tokenizer=CharTokenizer(),
        mel_spec=MelSpec(n_mels=N_MELS, fmax=None),
        mode=mode,
        cond_dim=24,
        **kw,
    )


def make_batch(tok: CharTokenizer, texts=("hello there", "hi"), with_durations=False) -> Batch:
    g = torch.Generator().manual_seed(0)
    ids = [tok.encode(t) for t in texts]
    L = max(map(len, ids))
    tokens = torch.zeros(len(ids), L, dtype=torch.long)
    for i, s in enumerate(ids):
        tokens[i, : len(s)] = torch.tensor(s)
    token_lengths = torch.tensor([len(s) for s in ids])
    durations = (torch.randint(1, 4, tokens.shape, generator=g) * (tokens != 0)).long()
    mel_lengths = durations.sum(-1)
    T = int(mel_lengths.max())
    mel_mask = torch.arange(T)[None] < mel_lengths[:, None]
    mel = torch.randn(len(ids), N_MELS, T, generator=g) - 4.0
    return Batch(
        mel=mel,
        mel_lengths=mel_lengths,
        mel_mask=mel_mask,
        tokens=tokens,
        token_lengths=token_lengths,
        token_mask=tokens != 0,
        durations=durations if with_durations else None,
        texts=list(texts),
        ids=[str(i) for i in range(len(ids))],
    )


@pytest.mark.parametrize(
    "mode,durations", [("aligned", False), ("aligned", True), ("cross_attention", False)]
)
def test_loss_and_gradients(mode, durations):
    model = build(mode).train()
    with torch.no_grad():  # the zero-initialized output conv blocks all gradient into the denoiser at init
        model.denoiser.conv_out.weight.normal_(0, 0.1)
    batch = make_batch(model.tokenizer, with_durations=durations)
    loss, logs = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert "diffusion_loss" in logs and ("prior_loss" in logs if mode == "aligned" else "length_loss" in logs)
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("text_encoder.") for n in grads)
    assert any(n.startswith("denoiser.") for n in grads)
    assert any(
        n.startswith("duration_predictor." if mode == "aligned" else "length_predictor.") for n in grads
    )


def test_exact_durations_are_checked():
    model = build("aligned", alignment="durations")
    batch = make_batch(model.tokenizer, with_durations=True)
    batch.durations[0, 0] += 1
    with pytest.raises(ValueError, match="durations"):
        model.loss(batch)
    with pytest.raises(ValueError, match="no durations"):
        model.loss(make_batch(model.tokenizer, with_durations=False))


@pytest.mark.parametrize("mode,denoiser", [("aligned", UNet1D), ("cross_attention", UNet2D)])
def test_generate_shapes_seed_and_batch_independence(mode, denoiser):
    model = build(mode, denoiser=denoiser).eval()
    with torch.no_grad():  # non-trivial outputs: the zero-initialized output convs would hide bugs
        model.denoiser.conv_out.weight.normal_(0, 0.1)
    sampler = Sampler(name="dpmpp_2m", steps=3)
    kw = dict(sampler=sampler, seed=7)
    if mode == "cross_attention":
        kw["lengths"] = torch.tensor([11, 6])
    mel, n = model.generate(["hello there", "hi"], **kw)
    assert mel.shape == (2, N_MELS, int(n.max())) and n.dtype == torch.long
    assert torch.isfinite(mel).all()
    silence = torch.log(torch.tensor(model.mel_spec.log_floor))
    assert torch.allclose(mel[1, :, int(n[1]) :], silence.expand_as(mel[1, :, int(n[1]) :]))
    again, _ = model.generate(["hello there", "hi"], **kw)
    torch.testing.assert_close(mel, again)
    # item 1 alone (same seed offset = its position) must match item 1 of the batch
    from tortoise_lite.diffusion.samplers import make_generators

    gens = make_generators(7, 2)[1:]
    kw1 = dict(kw, seed=None, generator=gens)
    if mode == "cross_attention":
        kw1["lengths"] = torch.tensor([6])
    alone, n1 = model.generate(["hi"], **kw1)
    assert int(n1[0]) == int(n[1])
    torch.testing.assert_close(alone[0], mel[1, :, : int(n1[0])], atol=1e-4, rtol=1e-4)
    other, _ = model.generate(["hello there", "hi"], **dict(kw, seed=8))
    assert (other - mel).abs().max() > 1e-3


def test_generate_guidance_and_overrides():
    model = build("aligned").eval()
    sampler = Sampler(name="euler", steps=2)
    mel, n = model.generate(tokens=[[5, 6, 7]], durations=torch.tensor([[2, 3, 4]]), sampler=sampler, seed=0)
    assert n.tolist() == [9] and mel.shape == (1, N_MELS, 9)
    slow, n2 = model.generate(["abc"], sampler=sampler, seed=0, length_scale=3.0, guidance=2.0)
    fast, n3 = model.generate(["abc"], sampler=sampler, seed=0, length_scale=1.0)
    assert int(n2) >= int(n3)
    with pytest.raises(ValueError, match="tokenizer|texts"):
        model.generate(sampler=sampler)


def _zero_sampler(x0_fn, schedule, noise, generator=None, steps=None, offset=None):
    """A 'sampler' whose diffusion output is exactly zero (reported with the offset it is given)."""
    from types import SimpleNamespace

    return SimpleNamespace(x=torch.zeros_like(noise) if offset is None else offset + 0.0)


def test_prior_residual_diffuses_x0_minus_mu_and_adds_mu_back():
    batch = make_batch(CharTokenizer(), with_durations=True)
    seen = {}
    for residual in (False, True):
        model = build("aligned", prior_residual=residual).eval()  # no dropout: mu recomputed below
        original = model.objective.loss

        def spy(fn, x0, mask=None, _original=original, _key=residual):
            seen[_key] = x0.detach().clone()
            return _original(fn, x0, mask=mask)

        model.objective.loss = spy
        model.loss(batch)
        with torch.no_grad():
            h, tmask = model.encode_text(batch.tokens, batch.token_mask)
            mu = expand_by_durations(model.prior(h), batch.durations, batch.mel.shape[-1])
        fm = batch.mel_mask[:, None, :].float()
        x0 = model.stats.normalize(batch.mel) * fm
        torch.testing.assert_close(seen[residual], (x0 - mu) * fm if residual else x0)

        # generation: the sampler's result is a residual on top of the expanded mu
        model.eval()
        durations = torch.tensor([[2, 3, 4]])
        mel, n = model.generate(tokens=[[5, 6, 7]], durations=durations, sampler=_zero_sampler, seed=0)
        with torch.no_grad():
            h, _ = model.encode_text(torch.tensor([[5, 6, 7]]), None)
            mu = expand_by_durations(model.prior(h), durations, 9)
        expected = model.stats.denormalize(mu if residual else torch.zeros_like(mu))
        torch.testing.assert_close(mel, expected)
    with pytest.raises(ValueError, match="prior_residual"):
        build("cross_attention", prior_residual=True)


def test_model_temperature_is_the_generate_default():
    sampler = Sampler(name="dpmpp_2m", steps=3)
    cold = build("aligned", temperature=0.5).eval()
    warm = build("aligned").eval()  # same seed -> same weights
    durations = torch.tensor([[2, 3, 4]])
    kw = dict(tokens=[[5, 6, 7]], durations=durations, sampler=sampler, seed=3)
    torch.testing.assert_close(cold.generate(**kw)[0], warm.generate(temperature=0.5, **kw)[0])
    assert not torch.allclose(warm.generate(**kw)[0], cold.generate(**kw)[0])
    with pytest.raises(ValueError, match="temperature"):
        build("aligned", temperature=0.0)


def test_pitch_conditioning_trains_the_predictor_and_feeds_the_comb():
    model = build("aligned", pitch=True, n_speakers=2, speaker_text=True).train()
    with torch.no_grad():
        model.denoiser.conv_out.weight.normal_(0, 0.1)
    # the denoiser's frame condition is the prior mean and the comb: 2 x n_mels channels
    assert model.denoiser.cond.null_frames.shape == (2 * N_MELS,)
    batch = make_batch(model.tokenizer, with_durations=True)
    batch.speaker = torch.tensor([0, 1])
    loss, logs = model.loss(batch)
    assert {"pitch_loss", "voicing_loss"} <= set(logs) and torch.isfinite(loss)
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("pitch_predictor.") for n in grads)
    assert any(n.startswith("speaker_text.") for n in grads)
    f0, voiced, _ = model.pitch_combs.estimate(batch.mel, batch.mel_mask)
    assert f0.shape == batch.mel_mask.shape and not voiced[~batch.mel_mask].any()


def test_pitch_generate_is_batch_independent_and_follows_pitch_shift():
    # with the pitch smoothing too: its window must not reach into another item's padding
    model = build("aligned", pitch=True, pitch_smoothing=5).eval()
    with torch.no_grad():
        model.denoiser.conv_out.weight.normal_(0, 0.1)
        # every frame voiced, so the comb (and pitch_shift) reaches the denoiser
        model.pitch_predictor.proj_out.bias.copy_(torch.tensor([0.0, 5.0]))
    kw = dict(sampler=Sampler(name="dpmpp_2m", steps=3), seed=7)
    mel, n = model.generate(["hello there", "hi"], **kw)
    from tortoise_lite.diffusion.samplers import make_generators

    alone, n1 = model.generate(["hi"], **dict(kw, seed=None, generator=make_generators(7, 2)[1:]))
    torch.testing.assert_close(alone[0], mel[1, :, : int(n1[0])], atol=1e-4, rtol=1e-4)
    shifted, _ = model.generate(["hello there", "hi"], **kw, pitch_shift=12.0)
    assert (shifted - mel).abs().max() > 1e-3


def test_voicing_threshold_decides_which_frames_get_the_comb():
    model = build("aligned", pitch=True).eval()
    with torch.no_grad():
        model.denoiser.conv_out.weight.normal_(0, 0.1)
        # every frame's predicted voicing probability is 0.5: the threshold alone decides
        model.pitch_predictor.proj_out.weight.zero_()
        model.pitch_predictor.proj_out.bias.zero_()
    kw = dict(sampler=Sampler(name="dpmpp_2m", steps=3), seed=7)
    for threshold, voiced in ((0.6, False), (0.4, True)):
        model.voicing_threshold = threshold
        mel, _ = model.generate(["hello there"], **kw)
        shifted, _ = model.generate(["hello there"], **kw, pitch_shift=12.0)
        # the pitch reaches the denoiser only through the comb of voiced frames
        assert ((shifted - mel).abs().max() > 1e-3) == voiced
    with pytest.raises(ValueError, match="voicing_threshold"):
        build("aligned", pitch=True, voicing_threshold=1.0)
    with pytest.raises(ValueError, match="pitch_smoothing"):
        build("aligned", pitch=True, pitch_smoothing=4)


def test_given_pitch_replaces_the_predicted_one():
    """Ground-truth-aligned generation: f0= / voiced= reach the comb exactly as a predicted pitch would."""
    model = build("aligned", pitch=True).eval()
    with torch.no_grad():
        model.denoiser.conv_out.weight.normal_(0, 0.1)
    tokens = torch.tensor([model.tokenizer.encode("hello there")])
    durations = torch.full(tokens.shape, 3)
    T = int(durations.sum())
    f0 = torch.linspace(100.0, 220.0, T)[None]
    voiced = torch.arange(T)[None] % 5 != 0
    kw = dict(tokens=tokens, durations=durations, sampler=Sampler(name="dpmpp_2m", steps=3), seed=7)
    given, n = model.generate(**kw, f0=f0, voiced=voiced)
    assert int(n[0]) == T
    from tortoise_lite.models.pitch import PITCH_REFERENCE_HZ

    logit = torch.where(voiced, 30.0, -30.0)
    model.predict_pitch = lambda h, d, m: (torch.log2(f0 / PITCH_REFERENCE_HZ), logit)
    predicted, _ = model.generate(**kw)
    torch.testing.assert_close(given, predicted, atol=1e-5, rtol=1e-5)
    del model.predict_pitch
    other, _ = model.generate(**kw, f0=f0 * 1.5, voiced=voiced)
    assert (other - given).abs().max() > 1e-3  # the given pitch decides the comb
    with pytest.raises(ValueError, match=r"f0 and voiced must be \(B, T\)"):
        model.generate(**kw, f0=f0[:, :-1])
    with pytest.raises(ValueError, match="f0= needs a model trained with pitch"):
        build("aligned").eval().generate(**kw, f0=f0)


def test_pitch_needs_aligned_mode():
    with pytest.raises(ValueError, match="pitch needs mode='aligned'"):
        build("cross_attention", denoiser=UNet2D, pitch=True)


def test_speaker_text_gives_each_speaker_its_own_durations():
    model = build("aligned", n_speakers=2, speaker_text=True).eval()
    # zero-initialized: the model starts as the speaker-free one
    assert torch.all(model.speaker_text.weight == 0)
    with torch.no_grad():
        model.speaker_text.weight.normal_(0, 1.0)
    tokens = torch.tensor([model.tokenizer.encode("hello there")])
    h, tmask = model.encode_text(tokens, tokens != 0)
    per_speaker = []
    for spk in (0, 1):
        hs = model.add_speaker(h, tmask, torch.tensor([spk]))
        per_speaker.append(model.duration_predictor(hs, tmask))
    assert (per_speaker[0] - per_speaker[1]).abs().max() > 1e-3
    # without a speaker table entry (or the option) the text features are unchanged
    torch.testing.assert_close(model.add_speaker(h, tmask, None), h)
    assert build("aligned", n_speakers=2).speaker_text is None
