import numpy as np
import soundfile as sf

from tortoise_lite.audio import MelSpec, load_audio
from tortoise_lite.data.cache import load_npy
from tortoise_lite.data.corpora import synthetic_speech, tones
from tortoise_lite.data.corpora.tones import midi_hz
from tortoise_lite.text.tokenizers import NoteTokenizer, PhonemeTokenizer, note_to_midi


def test_synthetic_speech_durations_align_with_phoneme_tokens(tmp_path):
    mel = MelSpec.preset("bigvgan_24k_100")  # 24 kHz: eSpeak's 22050 Hz output is resampled
    c = synthetic_speech(mel, n_utterances=6, n_heldout=3, cache_dir=tmp_path, progress=False)
    tok = PhonemeTokenizer()
    items = c.items()
    assert len(items) == 6 and {it.speaker for it in items} <= {"en-us", "en-us+f3", "en-us+m3", "en-us+f4"}
    for it in items:
        info = sf.info(it.audio)
        assert info.samplerate == 24000 and 1.0 <= info.duration <= 3.0
        d = load_npy(it.durations)
        wav = load_audio(it.audio)
        assert len(d) == len(tok.encode(it.text))
        assert int(d.sum()) == mel(wav).shape[-1] == mel.num_frames(len(wav))
        assert (d >= 0).all()
        # stress marks get no frames; vowels get some
        syms = tok.symbols_of(it.text)
        assert all(d[i] == 0 for i, s in enumerate(syms) if s in "ˈˌ")
    held = c.heldout_prompts()
    assert len(held) == 3 and not set(held) & {it.text for it in items}


def test_corpus_is_deterministic_and_cached(tmp_path):
    a = tones(n_sequences=5, n_heldout=2, cache_dir=tmp_path / "a", progress=False)
    b = tones(n_sequences=5, n_heldout=2, cache_dir=tmp_path / "b", progress=False)
    assert a.root.name == b.root.name  # same settings, same hash
    assert a.manifest.read_text() == b.manifest.read_text()
    for x, y in zip(a.items(), b.items()):
        assert open(x.audio, "rb").read() == open(y.audio, "rb").read()
    mtime = a.manifest.stat().st_mtime_ns
    again = tones(n_sequences=5, n_heldout=2, cache_dir=tmp_path / "a", progress=False)
    assert again.root == a.root and again.manifest.stat().st_mtime_ns == mtime  # reused, not regenerated
    other = tones(n_sequences=5, n_heldout=2, seed=1, cache_dir=tmp_path / "a", progress=False)
    assert other.root != a.root


def test_tones_pitch_and_note_boundaries(tmp_path):
    mel = MelSpec()
    c = tones(mel, n_sequences=4, n_heldout=2, rest_probability=0.0, cache_dir=tmp_path, progress=False)
    tok = NoteTokenizer()
    for it in c.items():
        d = load_npy(it.durations)
        notes = it.text.split()
        assert len(d) == len(tok.encode(it.text)) == len(notes)
        wav = load_audio(it.audio).numpy()
        assert int(d.sum()) == mel.num_frames(len(wav))
        # the first note's fundamental is where the note name says
        n0 = int(d[0]) * mel.hop
        seg = wav[:n0] * np.hanning(n0)
        spec = np.abs(np.fft.rfft(seg, 8 * n0))
        freqs = np.fft.rfftfreq(8 * n0, 1 / mel.sample_rate)
        f0 = midi_hz(note_to_midi(notes[0]))
        band = (freqs > f0 * 0.7) & (freqs < f0 * 1.3)
        assert abs(freqs[band][np.argmax(spec[band])] - f0) < 0.03 * f0
