import json

import numpy as np
import pytest
import soundfile as sf

from tortoise_lite.audio import MelSpec
from tortoise_lite.data.cache import load_npy
from tortoise_lite.data.manifest import ManifestError, load_manifest, read_jsonl
from tortoise_lite.data.preparation import PreparedDataset, PrepareError, PrepareLimits, prepare_dataset
from tortoise_lite.text.tokenizers import CharTokenizer

SR = 22050


def tone(seconds, sr=SR, f=220.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


def make_mixed_dataset(root):
    """Good items in odd formats and one bad item per failure mode; returns expected reasons."""
    root.mkdir(parents=True, exist_ok=True)

    def pair(name, text, audio=None, sr=SR, subtype="PCM_16"):
        if audio is not None:
            sf.write(root / f"{name}.wav", audio, sr, subtype=subtype)
        (root / f"{name}.txt").write_text(text)

    pair("good_16bit", "A plain sentence.", tone(1.0))
    pair("good_8bit", "Eight bits.", tone(0.8), subtype="PCM_U8")
    pair("good_24bit", "Twenty four bits.", tone(0.8), subtype="PCM_24")
    pair("good_float", "Floating point.", tone(0.8), subtype="FLOAT")
    pair("good_stereo", "Two channels.", tone(0.8, channels=2))
    pair("good_48k", "Forty eight kilohertz.", tone(1.0, sr=48000), sr=48000)
    pair("bad_truncated", "Cut short.", tone(1.0))
    data = (root / "bad_truncated.wav").read_bytes()
    (root / "bad_truncated.wav").write_bytes(data[: len(data) // 2])
    pair("bad_zero", "Nothing here.")
    (root / "bad_zero.wav").write_bytes(b"")
    nan = tone(0.8)
    nan[100:200] = np.nan
    pair("bad_nan", "Not a number.", nan, subtype="FLOAT")
    pair("bad_textfile", "Pretending.")
    (root / "bad_textfile.wav").write_text("this is not audio at all, just text\n" * 20)
    pair("bad_empty_text", "   ", tone(0.8))
    pair("bad_unknown", "Smile ☺ please.", tone(0.8))
    pair("bad_too_long", "Very long.", tone(3.0))
    pair("bad_silent", "Quiet.", np.zeros(SR, dtype=np.float32))
    pair("bad_too_short", "Quick.", tone(0.05))
    return {
        "bad_truncated": "truncated",
        "bad_zero": "empty_file",
        "bad_nan": "non_finite",
        "bad_textfile": "unreadable",
        "bad_empty_text": "empty_text",
        "bad_unknown": "unknown_symbols",
        "bad_too_long": "too_long",
        "bad_silent": "silent",
        "bad_too_short": "too_short",
    }


LIMITS = PrepareLimits(min_seconds=0.2, max_seconds=2.0, silence_dbfs=-50.0)


def test_mixed_dataset_is_prepared_with_every_bad_item_reported_once(tmp_path):
    expected = make_mixed_dataset(tmp_path / "ds")
    mel = MelSpec()
    items = load_manifest(tmp_path / "ds")
    p = prepare_dataset(items, mel, CharTokenizer(), tmp_path / "out", limits=LIMITS, progress=False)
    got = {s.id: s.reason for s in p.skipped}
    assert got == expected  # each bad item once, with its reason
    good = {e.id: e for e in p.entries}
    assert set(good) == {"good_16bit", "good_8bit", "good_24bit", "good_float", "good_stereo", "good_48k"}
    # odd formats converted: 48 kHz, 1 s -> frames of 1 s at 22050
    assert good["good_48k"].frames == mel.num_frames(SR)
    assert good["good_stereo"].frames == mel.num_frames(int(0.8 * SR))
    for e in p.entries:
        m = load_npy(p.mel_path(e))
        assert m.shape == (mel.n_mels, e.frames) and np.isfinite(m).all()
    msgs = {s.id: s.message for s in p.skipped}
    assert "header declares" in msgs["bad_truncated"]
    assert "0 bytes" in msgs["bad_zero"]
    assert "NaN" in msgs["bad_nan"]
    assert "unreadable or corrupt" in msgs["bad_textfile"]
    assert "'☺'" in msgs["bad_unknown"]
    assert "max_seconds=2.0" in msgs["bad_too_long"] and "min_seconds=0.2" in msgs["bad_too_short"]
    assert "dBFS" in msgs["bad_silent"]
    report = json.loads((p.view / "report.json").read_text())
    assert report["n_skipped"] == len(expected) and report["counts"]["truncated"] == 1
    text = (p.view / "report.txt").read_text()
    assert text.startswith("prepare report: 6 of 15 items usable, 9 skipped")
    assert all(f"] {i}:" in text for i in expected)
    loaded = PreparedDataset.load(p.view)
    assert [e.id for e in loaded.entries] == [e.id for e in p.entries]
    assert loaded.stats.count == sum(e.frames for e in p.entries)


def test_mel_cache_is_keyed_by_melspec_and_audio_content(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    sf.write(ds / "a.wav", tone(0.5), SR)
    (ds / "a.txt").write_text("hello")
    items = load_manifest(ds)
    p1 = prepare_dataset(items, MelSpec(), CharTokenizer(), tmp_path / "out", progress=False)
    p2 = prepare_dataset(
        items, MelSpec(n_mels=64, fmax=7000.0), CharTokenizer(), tmp_path / "out", progress=False
    )
    assert p1.entries[0].mel != p2.entries[0].mel
    assert load_npy(p2.mel_path(p2.entries[0])).shape[0] == 64
    # same file name, new content: a new cache entry, never the stale mel
    sf.write(ds / "a.wav", tone(0.5, f=880.0), SR)
    p3 = prepare_dataset(items, MelSpec(), CharTokenizer(), tmp_path / "out", progress=False)
    assert p3.entries[0].mel != p1.entries[0].mel
    assert not np.allclose(load_npy(p3.mel_path(p3.entries[0])), load_npy(p1.mel_path(p1.entries[0])))


def test_nothing_usable_is_an_error_pointing_at_the_report(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "x.wav").write_bytes(b"")
    (ds / "x.txt").write_text("hi")
    with pytest.raises(PrepareError, match="report.txt"):
        prepare_dataset(load_manifest(ds), MelSpec(), CharTokenizer(), tmp_path / "out", progress=False)


def test_manifest_formats_and_errors(tmp_path):
    lj = tmp_path / "lj"
    (lj / "wavs").mkdir(parents=True)
    (lj / "metadata.csv").write_text('LJ001|Dr. "Smith" 1|Doctor "Smith" one\nLJ002|plain|\n')
    items = load_manifest(lj)
    assert [(i.id, i.text) for i in items] == [("LJ001", 'Doctor "Smith" one'), ("LJ002", "plain")]
    assert items[0].audio.endswith("wavs/LJ001.wav")
    js = tmp_path / "m.jsonl"
    js.write_text('{"audio": "a.wav", "text": "x", "speaker": "s1", "duration": 1.5}\n\n')
    (it,) = read_jsonl(js)
    assert it.audio == str((tmp_path / "a.wav").resolve()) and it.speaker == "s1" and it.duration == 1.5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"audio": "a.wav"}\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl:1: each line needs 'audio' and 'text'"):
        read_jsonl(bad)
    bad.write_text("{nope\n")
    with pytest.raises(ManifestError, match=r"bad.jsonl:1: invalid JSON"):
        read_jsonl(bad)
    with pytest.raises(ManifestError, match="metadata.csv"):
        load_manifest(tmp_path / "lj" / "wavs", kind="ljspeech")
    with pytest.raises(ManifestError, match="not found or not a dataset"):
        load_manifest(tmp_path / "missing")


def test_durations_of_another_tokenizer_are_dropped_not_the_item(tmp_path):
    """Phoneme timings with a character tokenizer: items stay (alignment is learned); a wrong sum is still bad."""
    from tortoise_lite.data.manifest import Item

    mel = MelSpec()
    tok = CharTokenizer()
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(1.0), SR)
    frames = mel.num_frames(SR)
    other = tmp_path / "other.npy"
    np.save(other, np.array([frames - 3, 3], dtype=np.int64))  # 2 phoneme tokens, "hello" has 5 chars
    wrong_sum = tmp_path / "wrong.npy"
    np.save(wrong_sum, np.ones(len(tok.encode("hello")), dtype=np.int64))
    items = [
        Item("kept", str(wav), "hello", durations=str(other)),
        Item("bad", str(wav), "hello", durations=str(wrong_sum)),
    ]
    prepared = prepare_dataset(items, mel, tok, tmp_path / "out", progress=False)
    assert [e.id for e in prepared.entries] == ["kept"] and prepared.entries[0].durations is None
    assert [(s.id, s.reason) for s in prepared.skipped] == [("bad", "bad_durations")]
    assert json.loads((prepared.view / "meta.json").read_text())["n_without_durations"] == 1
