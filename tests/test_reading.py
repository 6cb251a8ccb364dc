"""Long-form reading with a tiny real speech checkpoint: joining, files, regenerate, streaming, candidates,
presets and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tortoise_lite.reading import Reader, ReadingTextError, load_preset, preset_names, segment_seed
from tortoise_lite.synthesize import main

TEXT = (
    "The red cat sees a ship. Dr. Smith paid $3.50 today!\n\n"
    "Is it 10:30 yet? Every green bird follows that ship again, slowly, and then the storm comes."
)
FAST = {"steps": 2, "seed": 0, "batch_size": 4, "max_chars": 40}


@pytest.fixture(scope="module")
def speech_ckpt(tmp_path_factory):
    from fixtures_ckpt import tiny_checkpoint

    return tiny_checkpoint("speech", tmp_path_factory)


@pytest.fixture(scope="module")
def tts(speech_ckpt):
    from tortoise_lite.api import TextToSpeech, load_checkpoint
    from tortoise_lite.vocoders import GriffinLim

    model, info = load_checkpoint(speech_ckpt)
    return TextToSpeech(model, vocoder=GriffinLim(model.mel_spec, n_iter=4, nnls_iters=4), info=info)


@pytest.fixture(scope="module")
def first_reading(tts, tmp_path_factory):
    out = tmp_path_factory.mktemp("reading")
    return tts.read(TEXT, out_dir=out, **FAST), out


def _manifest(out):
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def test_read_writes_segments_combined_and_a_manifest_that_covers_the_text(tts, first_reading):
    result, out = first_reading
    man = _manifest(out)
    rows = man["segments"]
    sr = tts.sample_rate
    assert len(rows) == len(result.segments) == 7 and [r["index"] for r in rows] == list(range(7))
    assert (
        " ".join(r["sentence"] for r in rows) == man["normalized"] == result.plan.normalized
    )  # nothing dropped
    assert rows[0]["sentence"] == "The red cat sees a ship." and rows[1]["sentence"].startswith(
        "Doctor Smith paid"
    )
    combined, rate = sf.read(out / "combined.wav", dtype="float32")
    assert rate == sr and np.array_equal(combined, result.combined)
    pos = 0
    for k, row in enumerate(rows):  # in order: segment audio, then exactly its pause in zeros
        seg, rate = sf.read(out / row["file"], dtype="float32")
        assert rate == sr and seg.size > 0 and np.abs(seg).max() > 0
        assert row["seconds"] == pytest.approx(seg.size / sr, abs=1e-4)
        assert np.array_equal(combined[pos : pos + seg.size], seg)
        pos += seg.size
        n_pause = int(round(row["pause"] * sr))
        assert not combined[pos : pos + n_pause].any()
        pos += n_pause
        assert row["take"] == 0 and row["seed"] == segment_seed(0, k, 0, 0)
    assert pos == combined.size and rows[-1]["pause"] == 0.0
    assert rows[0]["pause"] == 0.5 and rows[2]["pause"] == 0.9 and rows[3]["pause"] == 0.55  # ., paragraph, ?
    assert result.rtf > 0 and 0 < result.first_audio_seconds <= result.wall_seconds


def test_regenerate_changes_only_the_chosen_segments(tts, first_reading, tmp_path):
    import shutil

    _, first = first_reading
    out = tmp_path / "again"
    shutil.copytree(first, out)
    before = {p.name: p.read_bytes() for p in out.glob("segment_*.wav")}
    result = tts.read(TEXT, out_dir=out, regenerate=[1, 3], **FAST)
    assert result.generated == [1, 3]
    after = {p.name: p.read_bytes() for p in out.glob("segment_*.wav")}
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == ["segment_0001.wav", "segment_0003.wav"]  # the others bit for bit
    rows = _manifest(out)["segments"]
    assert [r["take"] for r in rows] == [0, 1, 0, 1, 0, 0, 0]
    assert rows[1]["seed"] == segment_seed(0, 1, 1, 0) != segment_seed(0, 1, 0, 0)
    old, _ = sf.read(first / "combined.wav", dtype="float32")
    new, _ = sf.read(out / "combined.wav", dtype="float32")
    # same durations (the predictor does not see the noise): segment spans line up
    spans, pos = [], 0
    for r in rows:
        n = int(round(r["seconds"] * tts.sample_rate))
        spans.append((pos, pos + n))
        pos += n + int(round(r["pause"] * tts.sample_rate))
    for k, (a, b) in enumerate(spans):
        same = np.array_equal(old[a:b], new[a:b])
        assert same == (k not in (1, 3)), k
    again = tts.read(TEXT, out_dir=out, regenerate="3", **FAST)  # a third take of 3, 1 kept
    assert [r["take"] for r in _manifest(out)["segments"]] == [0, 1, 0, 2, 0, 0, 0] and again.generated == [3]


def test_regenerate_errors_name_what_to_do(tts, first_reading, tmp_path):
    _, out = first_reading
    with pytest.raises(ValueError, match=r"segment\(s\) \[9\] do not exist; the reading has segments 0-6"):
        tts.read(TEXT, out_dir=out, regenerate=[9], **FAST)
    with pytest.raises(ReadingTextError, match="text .* differs .* segment 0 was 'The red cat sees a ship.'"):
        tts.read("A different text.", out_dir=out, regenerate=[0], **FAST)
    with pytest.raises(FileNotFoundError, match="manifest.json not found"):
        tts.read(TEXT, out_dir=tmp_path / "empty", regenerate=[0], **FAST)
    with pytest.raises(ValueError, match="regenerate needs out_dir"):
        tts.read(TEXT, regenerate=[0], **FAST)


def test_stream_chunks_concatenated_equal_the_reading(tts, first_reading):
    result, _ = first_reading
    chunks = list(tts.stream(TEXT, **FAST))
    assert [c.index for c in chunks] == list(range(7)) and chunks[0].text == "The red cat sees a ship."
    assert np.array_equal(np.concatenate([c.wav for c in chunks]), result.combined)
    times = [c.ready_seconds for c in chunks]
    assert times == sorted(times) and times[0] < times[-1]
    # another batching gives the same audio up to float rounding of batched products
    other = list(tts.stream(TEXT, **{**FAST, "batch_size": 1}))
    for a, b in zip(chunks, other):
        assert a.wav.shape == b.wav.shape and np.allclose(a.wav, b.wav, atol=1e-4)


def test_segment_audio_depends_only_on_its_text_seed_and_index(tts, first_reading):
    result, _ = first_reading
    longer = tts.read(TEXT + " One more line.", **FAST)
    for a, b in zip(result.segments, longer.segments[:7]):
        assert a.segment.text == b.segment.text or a.segment.index == 6
        if a.segment.index < 6:  # the last one's pause changes (it is no longer last), not its audio
            assert np.allclose(a.wav, b.wav, atol=1e-4)
    other_seed = tts.read(TEXT, **{**FAST, "seed": 1})
    assert not np.allclose(other_seed.segments[0].wav, result.segments[0].wav, atol=1e-3)


def test_candidates_keep_the_scorers_best_in_one_batch(tts):
    calls = []

    def loudest(wav, sample_rate, text):  # a stand-in "learned" scorer: prefer the loudest take
        calls.append(text)
        return -float(np.sqrt(np.mean(wav**2)))

    text = "The red cat sees a ship. Every bird follows that ship."
    res = tts.read(text, candidates=3, scorer=loudest, **FAST)
    assert len(calls) == 6 and calls[:3] == ["The red cat sees a ship."] * 3
    one = tts.read(text, candidates=1, **FAST)
    for k, seg in enumerate(res.segments):
        takes = [
            tts.synthesize(seg.segment.text, steps=2, seed=segment_seed(0, k, 0, c)).wavs[0].numpy()
            for c in range(3)
        ]
        rms = [float(np.sqrt(np.mean(np.clip(w, -1, 1) ** 2))) for w in takes]
        assert seg.chosen == int(np.argmax(rms)) and len(seg.errors) == 3
        assert np.allclose(seg.wav, np.clip(takes[seg.chosen], -1, 1), atol=1e-4)
        assert seg.seed == segment_seed(0, k, 0, seg.chosen)
        assert np.allclose(one.segments[k].wav, np.clip(takes[0], -1, 1), atol=1e-4)  # K=1 is candidate 0


def test_recognizer_scorer_when_the_recognizer_is_there(tts):
    pytest.importorskip("tortoise_lite.evaluation.intelligibility")
    from tortoise_lite.reading import RecognizerScorer

    scorer = RecognizerScorer()
    res = tts.read("The red cat sees a ship.", candidates=2, scorer=scorer, **FAST)
    assert len(res.segments[0].errors) == 2 and all(e >= 0 for e in res.segments[0].errors)


def test_presets_fill_what_is_not_given(tts):
    assert preset_names() == ["fast", "high_quality", "standard", "ultra_fast"]
    nfe = [load_preset(p)["steps"] for p in ("ultra_fast", "fast", "standard", "high_quality")]
    assert nfe == sorted(nfe)
    r = Reader(tts, preset="ultra_fast")
    assert (r.steps, r.candidates, r.sampler.name) == (load_preset("ultra_fast")["steps"], 1, "dpmpp_2m")
    r = Reader(tts, preset="high_quality", steps=3, candidates=1, scorer=None)
    assert (r.steps, r.candidates) == (3, 1)
    with pytest.raises(ValueError, match="unknown preset 'best'; choose one of: fast, high_quality"):
        Reader(tts, preset="best")


def test_tones_models_cannot_read(tones_ckpt):
    from tortoise_lite.api import TextToSpeech

    with pytest.raises(ReadingTextError, match="tones model"):
        TextToSpeech.from_checkpoint(tones_ckpt).read("C4 E4 G4. A4.")


# ---------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------
CLI = [
    "steps=2",
    "vocoder.n_iter=2",
    "vocoder.nnls_iters=2",
    "threads=1",
    "progress=false",
    "reading.max_chars=40",
]


def test_cli_textfile_regenerate_and_stream(speech_ckpt, tmp_path, capsys):
    chapter = tmp_path / "chapter.txt"
    chapter.write_text(TEXT + "\n", encoding="utf-8")
    out = tmp_path / "book"
    assert main([f"ckpt={speech_ckpt}", f"textfile={chapter}", f"out_dir={out}", *CLI]) == 0
    printed = capsys.readouterr().out
    assert "7 segments from" in printed and "RTF" in printed and "first audio after" in printed
    rows = _manifest(out)["segments"]
    first = {r["file"]: (out / r["file"]).read_bytes() for r in rows}
    assert main([f"ckpt={speech_ckpt}", f"textfile={chapter}", f"out_dir={out}", "regenerate=2,5", *CLI]) == 0
    assert "regenerated [2, 5]" in capsys.readouterr().out
    changed = sorted(f for f in first if (out / f).read_bytes() != first[f])
    assert changed == ["segment_0002.wav", "segment_0005.wav"]
    streamed = tmp_path / "streamed"
    assert (
        main([f"ckpt={speech_ckpt}", f"textfile={chapter}", f"out_dir={streamed}", "stream=true", *CLI]) == 0
    )
    printed = capsys.readouterr().out
    assert printed.startswith("first audio    0 ready at") and printed.count(" ready at ") == 7
    a, _ = sf.read(streamed / "combined.wav", dtype="float32")
    b = np.concatenate(
        [np.concatenate([sf.read(streamed / r["file"], dtype="float32")[0], np.zeros(int(round(r["pause"] * 22050)))])
         for r in _manifest(streamed)["segments"]]
    )  # fmt: skip
    assert np.array_equal(a, b.astype(np.float32))


def test_cli_preset_and_explicit_keys(speech_ckpt, tmp_path, capsys):
    args = [f"ckpt={speech_ckpt}", 'text=The red cat sees a ship. A bird.', f"out_dir={tmp_path}", "stream=true",
            "vocoder.n_iter=2", "vocoder.nnls_iters=2", "threads=1"]  # fmt: skip
    assert main([*args, "preset=ultra_fast"]) == 0
    settings = _manifest(tmp_path)["settings"]
    assert settings["preset"] == "ultra_fast" and settings["steps"] == load_preset("ultra_fast")["steps"]
    assert main([*args, "preset=ultra_fast", "steps=3"]) == 0  # the command line wins over the preset
    assert _manifest(tmp_path)["settings"]["steps"] == 3
    capsys.readouterr()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "nothing to read: the text is empty"),
        (b"\n\n   \n", "nothing to read: the text is empty"),
        (b"*** ### !!!", "no words, only symbols"),
        ("Caf\u00e9 ol\u00e9.".encode("latin-1"), "is not valid utf-8: byte 0xe9 at line 1, byte 3"),
        (b"Fine. The key is ^ here.", "segment 1 (paragraph 0), character 11: '^'"),
    ],
)
def test_cli_bad_text_files_are_one_line_errors(speech_ckpt, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    assert main([f"ckpt={speech_ckpt}", f"textfile={bad}", f"out_dir={tmp_path / 'o'}", *CLI]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o" / "combined.wav").exists()  # reported before any audio


def test_a_10000_character_chapter_reads_in_time_linear_in_its_length(tts):
    import time

    from tortoise_lite.benchmarks.presets import _paragraph

    def chapter(chars):
        paras = []
        while len("\n\n".join(paras)) < chars:
            paras.append(_paragraph(6, len(paras)))
        return "\n\n".join(paras)

    def best_time(text):
        best, result = float("inf"), None
        for _ in range(2):
            t0 = time.perf_counter()
            result = tts.read(text, steps=1, seed=0, batch_size=16)
            best = min(best, time.perf_counter() - t0)
        return best, result

    short, long = chapter(2500), chapter(10_000)
    assert len(long) >= 10_000
    t_short, _ = best_time(short)
    t_long, res = best_time(long)
    assert " ".join(s.segment.text for s in res.segments) == res.plan.normalized
    assert res.audio_seconds > 100 and all(s.wav.size > 0 for s in res.segments)
    per_char = (t_long / len(long)) / (t_short / len(short))
    assert per_char < 2.5, f"time per character grew {per_char:.1f}x from 2.5k to 10k characters"


def test_a_new_reading_replaces_an_earlier_longer_one(tts, tmp_path):
    tts.read(TEXT, out_dir=tmp_path, **FAST)
    assert len(list(tmp_path.glob("segment_*.wav"))) == 7
    tts.read("A short one. Two.", out_dir=tmp_path, **FAST)
    assert sorted(p.name for p in tmp_path.glob("segment_*.wav")) == ["segment_0000.wav", "segment_0001.wav"]
    assert [r["sentence"] for r in _manifest(tmp_path)["segments"]] == ["A short one.", "Two."]
