"""Reference conditioning: the encoder's invariances, the voice in loss and generation, independent guidance."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.test_models_text_to_mel import N_MELS, build, make_batch
from tortoise_lite.diffusion.guidance import cfg_x0_fn, combined_x0_fn
from tortoise_lite.models.reference import MIN_REFERENCE_FRAMES, ReferenceEncoder
from tortoise_lite.models.unet1d import UNet1D
from tortoise_lite.models.unet2d import UNet2D
from tortoise_lite.text.tokenizers import CharTokenizer


def _clips(n: int, lengths, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(N_MELS, t, generator=g) - 4.0 for t in lengths[:n]]


def _with_refs(batch, clips_per_item):
    K = max(len(c) for c in clips_per_item)
    Tr = max(c.shape[-1] for cs in clips_per_item for c in cs)
    ref = torch.full((len(clips_per_item), K, N_MELS, Tr), -11.5)
    lengths = torch.zeros(len(clips_per_item), K, dtype=torch.long)
    for b, cs in enumerate(clips_per_item):
        for k, c in enumerate(cs):
            ref[b, k, :, : c.shape[-1]] = c
            lengths[b, k] = c.shape[-1]
    return dataclasses.replace(batch, ref_mel=ref, ref_lengths=lengths)


def test_reference_encoder_order_batch_and_padding_invariant():
    torch.manual_seed(0)
    enc = ReferenceEncoder(N_MELS, channels=32, out_dim=16).eval()
    clips = _clips(3, [40, 57, 33])
    one = _with_refs(make_batch_stub(1), [clips])
    z = enc(one.ref_mel, one.ref_lengths)
    # clip order
    rev = _with_refs(make_batch_stub(1), [clips[::-1]])
    assert torch.allclose(enc(rev.ref_mel, rev.ref_lengths), z, atol=1e-5)
    # batch composition and extra padding (a longer clip in another item, a missing clip slot)
    other = _clips(1, [90], seed=1)
    both = _with_refs(make_batch_stub(2), [other, clips])
    zb = enc(both.ref_mel, both.ref_lengths)
    assert torch.allclose(zb[1], z[0], atol=1e-5)
    assert not torch.allclose(zb[0], z[0], atol=1e-3)
    with pytest.raises(ValueError, match="at least one reference clip"):
        enc(torch.zeros(1, 2, N_MELS, 30), torch.zeros(1, 2, dtype=torch.long))


def make_batch_stub(n: int):
    return make_batch(CharTokenizer(), texts=tuple(["hi"] * n))


@pytest.mark.parametrize(
    "mode,denoiser", [("aligned", UNet1D), ("cross_attention", UNet1D), ("aligned", UNet2D)]
)
def test_voice_model_trains_and_generates(mode, denoiser):
    model = build(mode, denoiser=denoiser, voice_dim=16, voice_channels=32).train()
    with torch.no_grad():
        model.denoiser.conv_out.weight.normal_(0, 0.1)
        model.voice_film.weight.normal_(0, 0.1)
    batch = make_batch(model.tokenizer)
    with pytest.raises(ValueError, match="data.references"):
        model.loss(batch)
    batch = _with_refs(batch, [_clips(2, [40, 50]), _clips(3, [30, 45, 60], seed=2)])
    loss, _ = model.loss(batch)
    loss.backward()
    enc_grad = sum(p.grad.abs().sum() for p in model.reference_encoder.parameters() if p.grad is not None)
    assert torch.isfinite(loss) and enc_grad > 0  # the encoder learns through the denoiser/prior
    model.eval()
    v1 = model.voice_latent(_clips(2, [40, 50]))
    v2 = model.voice_latent(_clips(2, [40, 50], seed=5))
    assert v1.shape == (16,)
    mel1, n1 = model.generate(texts=["hello there"], steps=3, seed=0, voice=v1)
    mel1b, _ = model.generate(texts=["hello there"], steps=3, seed=0, voice=v1)
    mel2, _ = model.generate(texts=["hello there"], steps=3, seed=0, voice=v2)
    assert torch.equal(mel1, mel1b)
    assert not torch.allclose(mel1, mel2)  # the voice changes the output
    avg, _ = model.generate(texts=["hello there"], steps=3, seed=0)  # no voice: the learned average voice
    assert torch.isfinite(avg).all()


def test_voice_latent_rejects_short_and_malformed_clips():
    model = build(voice_dim=16, voice_channels=32).eval()
    with pytest.raises(ValueError, match=f"at least {MIN_REFERENCE_FRAMES}"):
        model.voice_latent(_clips(1, [MIN_REFERENCE_FRAMES - 1]))
    with pytest.raises(ValueError, match="n_mels"):
        model.voice_latent([torch.zeros(N_MELS + 1, 40)])
    with pytest.raises(ValueError, match="no voice"):
        build().generate(texts=["hi"], steps=2, voice=torch.zeros(16))


def test_independent_voice_guidance_is_the_documented_combination():
    """s_c = s_v reduces to ordinary CFG; otherwise x_null + s_c (x_nov - x_null) + s_v (x_full - x_nov),
    checked against the three branches evaluated one by one."""
    model = build(voice_dim=16, voice_channels=32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    v = model.voice_latent(_clips(2, [40, 50]))
    seen = []

    def spy(mod, args, out):
        seen.append(args[0].shape[0])

    hook = model.denoiser.register_forward_hook(spy)
    model.generate(texts=["hi"], steps=2, seed=0, voice=v, guidance=2.0, voice_guidance=3.0)
    assert set(seen) == {3}  # three branches, one batched forward per evaluation
    seen.clear()
    model.generate(texts=["hi"], steps=2, seed=0, voice=v, guidance=2.0)
    assert set(seen) == {2}
    seen.clear()
    model.generate(texts=["hi"], steps=2, seed=0, voice=v)
    assert set(seen) == {1}
    seen.clear()
    model.generate(texts=["hi"], steps=2, seed=0, voice=v, voice_guidance=2.0)  # text weight 1 - s_c = 0
    assert set(seen) == {2}
    hook.remove()

    conds = []
    hook = model.denoiser.register_forward_pre_hook(lambda mod, args: conds.append(args[2]))
    model.generate(texts=["hi"], steps=1, seed=0, voice=v, guidance=2.0)
    hook.remove()
    c = conds[0]  # one scale: the unconditional row drops the text AND the voice
    assert c.drop.tolist() == [False, True]
    assert torch.equal(c.voice[0], v) and torch.equal(c.voice[1], model.null_voice.detach())

    x = torch.randn(2, 4, 5)
    t = torch.full((2,), 0.5)
    branches = [torch.randn(2, 4, 5) for _ in range(3)]  # full, no voice, null

    def multi(xx, tt):
        return torch.cat(branches)

    s_c, s_v = 2.0, 3.0
    got = combined_x0_fn(multi, [s_v, s_c - s_v, 1 - s_c])(x, t)
    full, nov, null = branches
    want = null + s_c * (nov - null) + s_v * (full - nov)
    assert torch.allclose(got, want, atol=1e-5)
    pair = cfg_x0_fn(lambda xx, tt: torch.cat([full, null]), s_c)(x, t)
    same = combined_x0_fn(lambda xx, tt: torch.cat([full, null]), [s_c, 1 - s_c])(x, t)
    assert torch.allclose(pair, same, atol=1e-5)
    with pytest.raises(ValueError, match="sum to 1"):
        combined_x0_fn(multi, [1.0, 1.0])
