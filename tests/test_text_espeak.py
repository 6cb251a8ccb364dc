import numpy as np
import pytest

from tortoise_lite.text import espeak


def test_synthesis_and_phoneme_events_match_phonemize():
    text = "The small cat sees a bird. Yes!"
    syn = espeak.synthesize(text, "en-us", rate=175, pitch=50)
    assert syn.sample_rate == 22050 and syn.audio.dtype == np.int16
    assert len(syn.audio) > 0.5 * syn.sample_rate
    samples = [e.sample for e in syn.events]
    assert samples == sorted(samples) and samples[-1] <= len(syn.audio)
    spoken = "".join(e.phoneme for e in syn.events)
    written = "".join(c for c in espeak.phonemize(text, "en-us") if c not in " ,.!?;:")
    assert spoken == written


def test_rate_changes_duration():
    slow = espeak.synthesize("one two three four five", "en-us", rate=100, pitch=50)
    fast = espeak.synthesize("one two three four five", "en-us", rate=300, pitch=50)
    assert len(fast.audio) < 0.6 * len(slow.audio)


def test_pitch_changes_fundamental():
    import librosa

    def f0(syn) -> float:
        # pyin, not a bare autocorrelation peak: pitch=10 speaks near 57 Hz, where a peak search locks onto a
        # harmonic that varies with what eSpeak synthesized before (its flutter state)
        f, _, _ = librosa.pyin(syn.audio.astype(np.float32) / 32768.0, fmin=40, fmax=500, sr=syn.sample_rate)
        return float(np.nanmedian(f))

    espeak.synthesize("hello there", "en-us+f3", rate=175, pitch=50)  # another voice first
    low = espeak.synthesize("aaaah", "en-us", rate=120, pitch=10)
    high = espeak.synthesize("aaaah", "en-us", rate=120, pitch=90)
    assert 45 < f0(low) < 75 and f0(high) > 1.8 * f0(low)


def test_bad_voice_and_ranges():
    with pytest.raises(espeak.EspeakError, match="no voice 'xx-nope'"):
        espeak.synthesize("hi", "xx-nope")
    with pytest.raises(ValueError, match="rate=10"):
        espeak.synthesize("hi", "en-us", rate=10)
    assert {"en-us", "en", "en-gb-x-rp"} <= set(espeak.list_voices("en"))
    assert espeak.voice_exists("en-us+f3") and not espeak.voice_exists("xx-nope")
