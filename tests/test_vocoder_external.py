"""Checkpoints in the upstream HiFi-GAN / BigVGAN / Vocos layouts load back with equal outputs."""

import copy
import json

import pytest
import torch
import yaml

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocoders import (
    BigVGANVocoder,
    HiFiGANVocoder,
    VocoderLoadError,
    VocosVocoder,
    detect_format,
    load_vocoder,
)
from tortoise_lite.vocoders.weight_norm import add_weight_norm, to_legacy_keys

HIFIGAN_H = {
    "resblock": "1",
    "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4],
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 7],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "num_mels": 80,
    "n_fft": 1024,
    "hop_size": 256,
    "win_size": 1024,
    "sampling_rate": 22050,
    "fmin": 0,
    "fmax": 8000,
}


def _weight_normed_copy(vocoder):
    """The model as upstream trains it: weight norm on every conv, with non-trivial magnitudes g."""
    wn = add_weight_norm(copy.deepcopy(vocoder.generator))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in wn.named_parameters():
            if name.endswith("original0"):
                p.mul_(torch.rand_like(p) + 0.5)
    return wn


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("resblock", ["1", "2"])
def test_hifigan_roundtrip(tmp_path, legacy, resblock):
    h = dict(HIFIGAN_H, resblock=resblock)
    if resblock == "2":
        h["resblock_dilation_sizes"] = [[1, 3], [1, 3]]
    torch.manual_seed(0)
    original = HiFiGANVocoder(MelSpec(), **h)
    wn = _weight_normed_copy(original)
    sd = wn.state_dict()
    assert any(k.endswith("parametrizations.weight.original1") for k in sd)
    if legacy:
        sd = to_legacy_keys(sd)
        assert "conv_pre.weight_g" in sd and "ups.0.weight_v" in sd
    torch.save({"generator": sd}, tmp_path / "g_00100000")
    (tmp_path / "config.json").write_text(json.dumps(h))
    assert detect_format(tmp_path / "g_00100000") == "hifigan"
    loaded = load_vocoder(tmp_path / "g_00100000")
    assert isinstance(loaded, HiFiGANVocoder) and loaded.mel_spec == MelSpec.preset("hifigan_22k_80")
    mel = torch.randn(2, 80, 12)
    with torch.no_grad():
        expected = wn(mel).squeeze(1)
        torch.testing.assert_close(loaded(mel), expected, atol=1e-5, rtol=1e-4)
    assert loaded(mel).shape == (2, 12 * 256)
    assert isinstance(load_vocoder(tmp_path), HiFiGANVocoder)  # the directory works too


def test_bigvgan_roundtrip(tmp_path):
    h = dict(
        HIFIGAN_H,
        upsample_rates=[4, 4, 4, 4],
        upsample_kernel_sizes=[8, 8, 8, 8],
        upsample_initial_channel=32,
        resblock_kernel_sizes=[3, 7],
        activation="snakebeta",
        snake_logscale=True,
        use_tanh_at_final=False,
        use_bias_at_final=False,
        num_mels=100,
        sampling_rate=24000,
        fmax=12000,
    )
    torch.manual_seed(0)
    original = BigVGANVocoder(MelSpec.preset("bigvgan_24k_100"), **h)
    with torch.no_grad():  # non-zero log-scale snake parameters so alpha != beta != 1
        for name, p in original.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.uniform_(-0.5, 0.5)
    wn = _weight_normed_copy(original)
    sd = wn.state_dict()
    assert "resblocks.0.activations.0.act.beta" in sd and "resblocks.0.activations.0.upsample.filter" in sd
    assert "ups.0.0.parametrizations.weight.original0" in sd
    torch.save({"generator": sd}, tmp_path / "bigvgan_generator.pt")
    (tmp_path / "config.json").write_text(json.dumps(h))
    assert detect_format(tmp_path) == "bigvgan"
    loaded = load_vocoder(tmp_path)
    assert loaded.mel_spec == MelSpec.preset("bigvgan_24k_100")
    mel = torch.randn(1, 100, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), wn(mel).squeeze(1), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("padding", ["center", "same"])
def test_vocos_roundtrip(tmp_path, padding):
    cfg = {
        "feature_extractor": {
            "class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
            "init_args": {
                "sample_rate": 24000,
                "n_fft": 1024,
                "hop_length": 256,
                "n_mels": 100,
                "padding": padding,
            },
        },
        "backbone": {
            "class_path": "vocos.models.VocosBackbone",
            "init_args": {"input_channels": 100, "dim": 64, "intermediate_dim": 192, "num_layers": 2},
        },
        "head": {
            "class_path": "vocos.heads.ISTFTHead",
            "init_args": {"dim": 64, "n_fft": 1024, "hop_length": 256, "padding": padding},
        },
    }
    ms = MelSpec.preset("vocos_24k_100", center=padding == "center")
    torch.manual_seed(0)
    original = VocosVocoder(ms, dim=64, intermediate_dim=192, num_layers=2)
    sd = dict(original.state_dict())
    # Upstream files also carry the feature extractor's buffers and the iSTFT window.
    sd["feature_extractor.mel_spec.mel_scale.fb"] = torch.zeros(513, 100)
    sd["head.istft.window"] = torch.hann_window(1024)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    torch.save(sd, tmp_path / "pytorch_model.bin")
    loaded = load_vocoder(tmp_path)
    assert loaded.mel_spec == ms
    mel = torch.randn(2, 100, 16)
    with torch.no_grad():
        out = loaded(mel)
        torch.testing.assert_close(out, original(mel))
    assert out.shape == (2, 15 * 256 if padding == "center" else 16 * 256)


def test_vocos_center_istft_matches_torch():
    from tortoise_lite.vocoders.spectral import ISTFT

    spec = torch.randn(2, 513, 20, dtype=torch.complex64)
    ours = ISTFT(1024, 256, 1024, "center")(spec)
    ref = torch.istft(spec, 1024, 256, 1024, torch.hann_window(1024), center=True)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(VocoderLoadError, match="no such vocoder"):
        load_vocoder(tmp_path / "missing.pt")
    with pytest.raises(VocoderLoadError, match="not a known vocoder layout"):
        load_vocoder(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(VocoderLoadError, match="junk.pt"):
        load_vocoder(junk)
    (tmp_path / "config.json").write_text(json.dumps(HIFIGAN_H))
    torch.save({"generator": {"conv_pre.weight": torch.zeros(3)}}, tmp_path / "g_00000001")
    with pytest.raises(VocoderLoadError, match="do not match"):
        load_vocoder(tmp_path / "g_00000001")
