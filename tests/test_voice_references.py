"""Zero-shot voices from the user's side (tortoise_lite.voice, the API, the CLIs, the page's request logic):
clips -> mels -> latents, latent files tied to their checkpoint, what ``voice=`` names, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tortoise_lite.models.reference import MIN_REFERENCE_FRAMES
from tortoise_lite.voice import (
    VoiceError,
    fingerprint,
    load_clips,
    load_latent,
    save_latent,
)

SR = 22050


def speech_like(sr: int = SR, f0: float = 140.0, seconds: float = 1.2, pad: float = 0.3, seed: int = 0):
    """A voiced, gliding harmonic tone (content below 4 kHz) with ``pad`` seconds of silence either side."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * (2 + rng.random()) * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 12) if k * f0 < 3500)
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t) ** 2)
    z = np.zeros(int(pad * sr))
    return np.concatenate([z, x, z]).astype(np.float32)


@pytest.fixture(scope="module")
def voice_ckpt(tmp_path_factory):
    from fixtures_ckpt import tiny_voice_checkpoint

    return tiny_voice_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """voices/alice (two clips), voices/bob (one), and a loose clip."""
    root = tmp_path_factory.mktemp("voice_clips")
    (root / "voices" / "alice").mkdir(parents=True)
    (root / "voices" / "bob").mkdir()
    sf.write(root / "voices" / "alice" / "a1.wav", speech_like(f0=210, seed=1), SR)
    sf.write(root / "voices" / "alice" / "a2.wav", speech_like(f0=220, seconds=1.0, seed=2), SR)
    sf.write(root / "voices" / "bob" / "b1.wav", speech_like(f0=105, seed=3), SR)
    sf.write(root / "loose.wav", speech_like(f0=160, seed=4), SR)
    return root


@pytest.fixture(scope="module")
def tts(voice_ckpt, clips):
    from tortoise_lite.api import TextToSpeech, load_checkpoint
    from tortoise_lite.vocoders import GriffinLim

    model, info = load_checkpoint(voice_ckpt)
    vocoder = GriffinLim(model.mel_spec, n_iter=4, nnls_iters=4)
    return TextToSpeech(model, vocoder=vocoder, info=info, voices_dir=clips / "voices")


def one_line_naming(e: pytest.ExceptionInfo, *words: str) -> str:
    msg = str(e.value)
    assert isinstance(e.value, VoiceError) and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_saved_latent_gives_the_same_audio(tts, clips, tmp_path):
    folder = clips / "voices" / "alice"
    voice = tts.resolve_voice(str(folder))
    assert voice.latent.shape == (tts.voice_dim,) and len(voice.clips) == 2
    assert 2.0 < voice.seconds < 2.5  # 1.2 s + 1.0 s of sound (+ margins): the silence around is trimmed
    path = save_latent(tmp_path / "alice.pt", voice.latent, tts, clips=voice.clips, seconds=voice.seconds)
    assert not list(tmp_path.glob("*.tmp"))
    data = torch.load(path, weights_only=True)
    assert data["format"] == "tortoise_lite.voice" and data["version"] == 1 and data["clips"] == voice.clips
    assert data["fingerprint"] == fingerprint(tts.model) and data["voice_dim"] == tts.voice_dim
    assert torch.equal(load_latent(path, tts), voice.latent)
    kw = {"steps": 2, "seed": 3}
    from_clips = tts.synthesize("hello there", voice=str(folder), **kw)
    from_file = tts.synthesize("hello there", voice=str(path), **kw)
    from_tensor = tts.synthesize("hello there", voice=voice.latent, **kw)
    assert torch.equal(from_clips.mels[0], from_file.mels[0]) and torch.equal(
        from_clips.mels[0], from_tensor.mels[0]
    )
    average = tts.synthesize("hello there", **kw)  # no voice: the model's learned average voice
    assert from_file.extra["voice"] == str(path) and average.extra == {}


def test_clip_order_does_not_change_the_latent(tts, clips):
    files = sorted((clips / "voices").rglob("*.wav"))
    forward = tts.voice_latent([str(f) for f in files])
    backward = tts.voice_latent([str(f) for f in files[::-1]])
    assert torch.allclose(forward, backward, atol=1e-5)


def test_stereo_16k_clip_is_resampled_to_the_mono_22k_voice(tts, tmp_path):
    mono, low = speech_like(SR, seed=5), speech_like(16000, seed=5)
    sf.write(tmp_path / "stereo16k.wav", np.stack([1.2 * low, 0.8 * low], axis=1), 16000)  # mean = low
    a = tts.voice_latent([(mono, SR)])
    b = tts.voice_latent(str(tmp_path / "stereo16k.wav"))
    other = tts.voice_latent([(speech_like(SR, f0=230, seed=5), SR)])
    assert (a - b).norm() < 0.02 * a.norm() < (a - other).norm()


def test_long_clips_are_cut_into_reference_windows(tts):
    refs = load_clips([(speech_like(seconds=5.0, pad=0.0), SR)], tts.mel_spec, reference_frames=192)
    frames = refs[0].mel.shape[-1]
    assert len(refs[0].windows) == -(-frames // 192) >= 3
    assert sum(w.shape[-1] for w in refs[0].windows) == frames
    assert all(MIN_REFERENCE_FRAMES <= w.shape[-1] <= 192 for w in refs[0].windows)


def test_blends_names_and_trained_voices(tts, clips):
    alice, bob = tts.voice_latent("alice"), tts.voice_latent("bob")
    assert torch.allclose(tts.voice_latent("alice+bob"), (alice + bob) / 2, atol=1e-6)
    trained = tts.trained_voices
    corpus = tts.info.config["data"]["source"]["voices"]
    assert len(trained) >= 2 and set(trained) <= set(corpus) and trained == tts.info.voices
    assert tts.voices == [*trained, "alice", "bob"]
    plus = next((v for v in trained if "+" in v), None)
    if plus is not None:  # an eSpeak name with '+' is one voice; after it, '+' blends
        assert tts.resolve_voice(plus).description == f"{plus} (trained)"
        blend = tts.resolve_voice(f"{plus}+alice")
        assert blend.description == f"{plus} (trained)+alice"
        assert torch.allclose(blend.latent, (tts.voice_latent(plus) + alice) / 2, atol=1e-6)
    loose = str(clips / "loose.wav")
    assert torch.allclose(tts.voice_latent(f"{loose}+bob"), (tts.voice_latent(loose) + bob) / 2, atol=1e-6)


def test_bad_references_are_one_line_errors_naming_the_file(tts, clips, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio here")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF not really a wav file at all")
    sf.write(tmp_path / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    sf.write(tmp_path / "short.wav", speech_like(seconds=0.08, pad=0.5), SR)
    cases = [
        ("missing.wav", ["missing.wav", "no such file or folder"]),
        ("empty_dir", ["empty_dir", "no audio files"]),
        ("notes", ["notes", "no audio files"]),
        ("empty.wav", ["empty.wav", "empty"]),
        ("corrupt.wav", ["corrupt.wav", "corrupt"]),
        ("silent.wav", ["silent.wav", "silent"]),
    ]
    for name, words in cases:
        with pytest.raises(VoiceError) as e:
            tts.resolve_voice(str(tmp_path / name))
        one_line_naming(e, *words)
    minimum = MIN_REFERENCE_FRAMES * tts.mel_spec.hop / tts.sample_rate
    with pytest.raises(VoiceError) as e:
        tts.resolve_voice([str(tmp_path / "short.wav")])
    one_line_naming(e, "short.wav", f"{minimum:.2f} s ({MIN_REFERENCE_FRAMES} frames", "after trimming")
    with pytest.raises(VoiceError) as e:
        tts.resolve_voice("nobody+alice")
    one_line_naming(e, "unknown voice 'nobody+alice'", "alice, bob", *tts.trained_voices)
    with pytest.raises(VoiceError) as e:
        tts.synthesize("hello", voice=torch.zeros(tts.voice_dim + 1), steps=1)
    one_line_naming(e, f"({tts.voice_dim},)")
    with pytest.raises(VoiceError) as e:
        load_latent(tmp_path / "corrupt.wav", tts)
    one_line_naming(e, "corrupt.wav", "not a readable torch file")


def test_a_latent_of_another_checkpoint_is_refused(tts, tmp_path_factory, tmp_path):
    from fixtures_ckpt import tiny_voice_checkpoint

    from tortoise_lite.api import load_checkpoint

    other_ckpt = tiny_voice_checkpoint(tmp_path_factory, seed=7)
    other, info = load_checkpoint(other_ckpt)
    assert fingerprint(other) != fingerprint(tts.model)
    path = save_latent(
        tmp_path / "theirs.pt", other.voice_latent([torch.full((80, 40), -3.0)]), other, info=info
    )
    with pytest.raises(VoiceError) as e:
        tts.resolve_voice(str(path))
    one_line_naming(e, "theirs.pt", str(other_ckpt), str(tts.info.path), "another checkpoint")
    # a tampered fingerprint, and a latent of the wrong size
    data = torch.load(path, weights_only=True)
    torch.save({**data, "fingerprint": "0" * 64, "checkpoint": ""}, tmp_path / "tampered.pt")
    with pytest.raises(VoiceError) as e:
        load_latent(tmp_path / "tampered.pt", tts)
    one_line_naming(e, "tampered.pt", "another checkpoint")
    torch.save(
        {**data, "latent": torch.zeros(tts.voice_dim * 2), "voice_dim": tts.voice_dim * 2},
        tmp_path / "wide.pt",
    )
    with pytest.raises(VoiceError) as e:
        load_latent(tmp_path / "wide.pt", tts)
    one_line_naming(e, "wide.pt", f"{tts.voice_dim * 2} values", f"latents of {tts.voice_dim}")


def test_a_model_without_voices_refuses_one(tones_ckpt, clips):
    from tortoise_lite.api import TextToSpeech

    plain = TextToSpeech.from_checkpoint(tones_ckpt)
    assert plain.trained_voices == [] and plain.voices == [] and plain.voice_dim == 0
    with pytest.raises(VoiceError) as e:
        plain.synthesize("C4 E4", voice=str(clips / "loose.wav"), steps=1)
    one_line_naming(e, str(tones_ckpt), "trained without reference clips")
    with pytest.raises(VoiceError, match="voice_guidance needs a voice model"):
        plain.synthesize("C4 E4", voice_guidance=2.0, steps=1)


def test_reading_and_the_page_take_a_voice(tts, clips, tmp_path):
    from tortoise_lite.serve import RequestError, ServeEngine, Settings

    result = tts.read("Hello there. See you soon.", voice="alice", steps=2, seed=0)
    assert result.settings["voice"] == "alice" and len(result.segments) >= 1
    engine = ServeEngine(tts, work_dir=tmp_path / "serve", voices_dir=str(clips / "voices"))
    assert engine.voice_names() == [*tts.trained_voices, "alice", "bob"]
    kw = engine.check(Settings(text="hello", voice="bob"))
    assert torch.equal(kw["voice"], tts.voice_latent("bob"))
    kw = engine.check(Settings(text="hello", reference_clip=str(clips / "loose.wav")))
    assert torch.equal(kw["voice"], tts.voice_latent(str(clips / "loose.wav")))
    assert "voice" not in engine.check(Settings(text="hello", voice="(average voice)"))
    with pytest.raises(RequestError, match="no voice 'zed'"):
        engine.check(Settings(text="hello", voice="zed"))


def test_voices_cli_writes_a_latent_that_synthesize_uses(voice_ckpt, clips, tmp_path):
    from _train_utils import subprocess_env

    env = subprocess_env()
    out = tmp_path / "alice.pt"
    cmd = [
        sys.executable,
        "-m",
        "tortoise_lite.voices",
        f"ckpt={voice_ckpt}",
        f"voice={clips / 'voices' / 'alice'}",
    ]
    r = subprocess.run([*cmd, f"out={out}"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (
        str(out) in r.stdout and "2 clips" in r.stdout and "a1.wav" in r.stdout and " s of audio" in r.stdout
    )
    syn = [
        sys.executable,
        "-m",
        "tortoise_lite.synthesize",
        f"ckpt={voice_ckpt}",
        f"voice={out}",
        "text=hello there",
    ]
    syn += ["steps=2", "vocoder.n_iter=4", "vocoder.nnls_iters=4", f"out_dir={tmp_path / 'wavs'}"]
    r = subprocess.run(syn, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"voice: {out}" in r.stdout and (tmp_path / "wavs" / "utt_000.wav").is_file()


def test_voices_cli_lists_and_reports_bad_input(voice_ckpt, clips, tmp_path, capsys):
    from tortoise_lite.voices import main

    assert main([f"ckpt={voice_ckpt}", "list=true", f"voices_dir={clips / 'voices'}"]) == 0
    printed = capsys.readouterr().out
    assert "trained voices" in printed and "alice, bob" in printed
    assert main([f"ckpt={voice_ckpt}", f"voice={tmp_path / 'none'}", f"out={tmp_path / 'x.pt'}"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: unknown voice") and err.count("\n") == 1 and not (tmp_path / "x.pt").exists()
    )
    assert main([f"ckpt={voice_ckpt}", f"voice={clips / 'loose.wav'}"]) == 2
    assert "out=... is required" in capsys.readouterr().err


def test_the_page_offers_the_voices_of_a_voice_model(tts, clips, tmp_path):
    pytest.importorskip("gradio")
    from tortoise_lite.serve import AVERAGE_VOICE, ServeEngine, build_app

    engine = ServeEngine(tts, work_dir=tmp_path / "serve", voices_dir=str(clips / "voices"))
    demo = build_app(engine)
    widgets = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    choices = [c[0] for c in widgets["voice"].choices]
    assert choices == [AVERAGE_VOICE, *tts.trained_voices, "alice", "bob"] and widgets["voice"].visible
    assert widgets["reference_clip"].visible


def test_clips_are_levelled_as_the_training_audio_was(tts, clips):
    """A checkpoint trained on levelled audio (data.limits.loudness_dbfs) gets its references levelled too:
    the same recording 20 dB quieter gives the same mel; without levelling it does not."""
    from tortoise_lite.voice.clips import clip_from_audio
    from tortoise_lite.voice.resolve import training_loudness

    x = speech_like(f0=150, seed=7)
    loud = clip_from_audio(x, SR, tts.mel_spec, "loud", loudness_dbfs=-23.0)
    quiet = clip_from_audio(0.1 * x, SR, tts.mel_spec, "quiet", loudness_dbfs=-23.0)
    assert torch.allclose(loud.mel, quiet.mel, atol=1e-3)
    raw_loud = clip_from_audio(x, SR, tts.mel_spec, "loud")
    raw_quiet = clip_from_audio(0.1 * x, SR, tts.mel_spec, "quiet")
    voiced = raw_loud.mel > -6.0  # bins well above the log floor
    assert (raw_loud.mel - raw_quiet.mel)[voiced].mean() > 2.0  # log(10) = 2.3 apart
    info = type("Info", (), {"config": {"data": {"limits": {"loudness_dbfs": -23.0}}}})()
    assert training_loudness(info) == -23.0
    assert training_loudness(tts.info) is None  # the speech corpus is not levelled
