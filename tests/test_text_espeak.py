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
    def f0(a: np.ndarray, sr: int) -> float:
        a = a.astype(np.float64)
        a = a[np.abs(a) > 0.1 * np.abs(a).max()]
        ac = np.correlate(a[:4000], a[:4000], "full")[3999:]
        lo, hi = sr // 400, sr // 60
        return sr / (lo + np.argmax(ac[lo:hi]))

    low = espeak.synthesize("aaaah", "en-us", rate=120, pitch=10)
    high = espeak.synthesize("aaaah", "en-us", rate=120, pitch=90)
    assert f0(high.audio, high.sample_rate) > 1.2 * f0(low.audio, low.sample_rate)


def test_bad_voice_and_ranges():
    with pytest.raises(espeak.EspeakError, match="no voice 'xx-nope'"):
        espeak.synthesize("hi", "xx-nope")
    with pytest.raises(ValueError, match="rate=10"):
        espeak.synthesize("hi", "en-us", rate=10)
    assert {"en-us", "en", "en-gb-x-rp"} <= set(espeak.list_voices("en"))
    assert espeak.voice_exists("en-us+f3") and not espeak.voice_exists("xx-nope")
