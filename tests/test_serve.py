"""The web page's request logic without a browser or Gradio: validation errors that name the field, one
synthesis with the x0 trajectory and its figures, the preset and voice hooks, the command line's defaults.
(The page itself is tested in a real browser by test_serve_browser.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tortoise_lite.api import load_checkpoint
from tortoise_lite.serve import (
    RequestError,
    ServeEngine,
    Settings,
    check_reference_clip,
    main,
    preset_settings,
)
from tortoise_lite.voice import list_voices_dir


@pytest.fixture(scope="module")
def engine(tones_ckpt, tmp_path_factory):
    from tortoise_lite.api import TextToSpeech
    from tortoise_lite.vocoders import GriffinLim

    model, info = load_checkpoint(tones_ckpt)
    tts = TextToSpeech(model, vocoder=GriffinLim(model.mel_spec, n_iter=4, nnls_iters=4), info=info)
    return ServeEngine(tts, work_dir=tmp_path_factory.mktemp("serve_engine"), threads=1, max_chars=40)


@pytest.mark.parametrize(
    "settings, field, words",
    [
        (Settings(text=" \n "), "text", "empty"),
        (Settings(text="C4 hello"), "text", "unknown symbol"),
        (Settings(text="C4 " * 20), "text", "limit of 40 (max_chars)"),
        (Settings(text="C4", steps=0), "steps", "from 1 to 200"),
        (Settings(text="C4", steps=2.5), "steps", "whole number"),
        (Settings(text="C4", seed="abc"), "seed", "not a whole number"),
        (Settings(text="C4", guidance=-1), "guidance", "from 0 to 20"),
        (Settings(text="C4", temperature=0), "temperature", "out of range"),
        (Settings(text="C4", length_scale=9), "length scale", "from 0.25 to 4"),
        (Settings(text="C4", sampler="nope"), "sampler", "choose one of"),
        (Settings(text="C4", speaker="tuba"), "speaker", "known speakers"),
        (Settings(text="C4", voice="alice"), "voice", "no voice 'alice'"),
    ],
)
def test_bad_requests_name_the_field(engine, settings, field, words):
    with pytest.raises(RequestError) as info:
        engine.check(settings)
    assert info.value.field == field and words in str(info.value), str(info.value)


def test_one_request_gives_audio_mel_and_the_denoising_figures(engine):
    speaker = engine.tts.speakers[0]
    r = engine.synthesize(Settings(text="C4 E4\nG4", speaker=speaker, steps=5, seed=2))
    wav, sr = sf.read(r.wav)
    assert sr == engine.tts.sample_rate and len(wav) == r.samples
    assert r.samples == engine.tts.mel_spec.num_samples(r.frames)
    assert r.nfe == 5 and r.steps == 5 and r.sampler == "dpmpp_2m" and r.seed == 2
    for png in (r.mel_png, r.strip_png, r.bands_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(r.settle_steps) == len(r.band_labels) == 8
    assert all(s is None or 1 <= s <= 5 for s in r.settle_steps)
    summary = r.summary_markdown()
    assert f"| mel frames | {r.frames} |" in summary and "real-time factor" in summary
    again = engine.synthesize(Settings(text="C4 E4 G4", speaker=speaker, steps=5, seed=2))  # lines = one text
    assert again.frames == r.frames and np.allclose(sf.read(again.wav)[0], wav, atol=1e-3)


def test_band_settling_is_relative_to_the_first_step(engine):
    import torch

    final = torch.randn(1, engine.tts.mel_spec.n_mels, 6)
    preds = [final + 1.0, final + 0.5, final.clone()]
    bs = engine.band_settling(preds, final, 6)
    assert np.allclose(bs["relative"][0], 1.0) and np.allclose(bs["relative"][-1], 0.0)
    assert bs["settle_steps"] == [3] * len(bs["labels"])


def test_reference_clip_checks(tmp_path, engine):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    short = tmp_path / "short.wav"
    sf.write(short, np.full(2205, 0.1, dtype="float32"), 22050)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050, dtype="float32"), 22050)
    good = tmp_path / "good.wav"
    sf.write(good, 0.3 * np.sin(np.arange(22050) / 10).astype("float32"), 22050)
    for path, words in [(bad, "not a readable audio file"), (short, "at least 0.5 s"), (silent, "silent")]:
        with pytest.raises(RequestError, match=words) as info:
            check_reference_clip(path)
        assert info.value.field == "reference clip" and path.name in str(info.value)
    assert check_reference_clip(good) == good


def test_voice_and_preset_hooks(tmp_path, monkeypatch):
    (tmp_path / "voices" / "alice").mkdir(parents=True)
    (tmp_path / "voices" / "bob.pt").write_bytes(b"")
    assert list_voices_dir(tmp_path / "voices") == ["alice", "bob"] and list_voices_dir(None) == []
    conf = tmp_path / "conf"
    (conf / "preset").mkdir(parents=True)
    (conf / "preset" / "fast.yaml").write_text("sampler:\n  name: dpmpp_3m\n  steps: 6\nguidance: 1.5\n")
    (conf / "preset" / "flat.yaml").write_text("preset:\n  sampler: heun\n  steps: 12\n")
    import tortoise_lite.paths

    monkeypatch.setattr(tortoise_lite.paths, "config_dir", lambda: conf)
    from tortoise_lite.serve import list_presets

    assert list_presets() == ["fast", "flat"]
    assert preset_settings("fast") == {"sampler": "dpmpp_3m", "steps": 6, "guidance": 1.5}
    assert preset_settings("flat") == {"sampler": "heun", "steps": 12}
    with pytest.raises(RequestError, match="no preset 'x'; choose one of: fast, flat"):
        preset_settings("x")


def test_command_line_defaults_and_errors(capsys):
    from tortoise_lite.evaluation.cli import compose

    cfg = compose("serve", ["ckpt=x.ckpt"])
    assert cfg.host == "127.0.0.1" and cfg.port == 7860 and cfg.concurrency == 1 and cfg.queue_size >= 8
    assert main(["port=7000"]) == 2
    assert "ckpt=... is required" in capsys.readouterr().err
    assert main(["ckpt=x.ckpt", "port=70000"]) == 2
    assert "port=70000" in capsys.readouterr().err
