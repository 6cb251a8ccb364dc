"""eSpeak NG through ctypes (the library and its data come from the ``espeakng-loader`` wheel).

Three services, all from the same ``libespeak-ng``:

* ``phonemize(text, voice)`` -> IPA string for the WHOLE text. ``espeak_TextToPhonemes`` converts one
  clause per call and advances the text pointer, so we loop until the pointer is exhausted (NULL); the
  clause-ending punctuation that eSpeak consumes is re-attached from the consumed slice of the input.
* ``synthesize(text, voice, rate, pitch)`` -> ``Synthesis``: int16 audio at eSpeak's native rate
  (``sample_rate``, 22050 Hz for the bundled voices) plus the phoneme events with their exact sample
  positions (``espeakEVENT_PHONEME`` with ``sample``), i.e. exact phoneme durations.
* ``list_voices()`` / ``voice_exists(name)``.

libespeak-ng keeps global state (one voice, one callback), so every call takes a process-wide lock and
the library is (re)initialized lazily in each process (DataLoader workers fork).
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass, field

import numpy as np

# --- constants from speak_lib.h --------------------------------------------------------------------
AUDIO_OUTPUT_SYNCHRONOUS = 2
espeakINITIALIZE_PHONEME_EVENTS = 0x0001
espeakINITIALIZE_PHONEME_IPA = 0x0002
espeakINITIALIZE_DONT_EXIT = 0x8000
espeakCHARS_UTF8 = 1
espeakPHONEMES_IPA = 0x02  # phonememode bit 1 of espeak_TextToPhonemes
POS_CHARACTER = 1
EE_OK = 0

EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
EVENT_SAMPLERATE = 8

espeakRATE = 1
espeakVOLUME = 2
espeakPITCH = 3
espeakRANGE = 4

# eSpeak's documented parameter ranges (speak_lib.h): words per minute and 0-100 pitch.
RATE_RANGE = (80, 450)
PITCH_RANGE = (0, 100)

# Punctuation that ends an eSpeak clause; re-attached to the IPA of that clause.
CLAUSE_PUNCTUATION = ",.;:!?"


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded, initialized or asked to do something."""


class _Event(ctypes.Structure):
    # espeak_EVENT; ``id`` is a union whose largest member is ``char string[8]`` (phoneme names)
    # next to a pointer (``const char *name``), so it is 8 bytes wide and pointer-aligned.
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme (``phoneme == ""`` for a pause) starting at ``sample`` (native rate) in the output."""

    phoneme: str
    sample: int
    text_position: int


@dataclass
class Synthesis:
    """Result of ``synthesize``: ``audio`` (S,) int16 at ``sample_rate`` and the phoneme events in order."""

    audio: np.ndarray
    sample_rate: int
    events: list[PhonemeEvent] = field(default_factory=list)
    word_positions: list[int] = field(default_factory=list)

    @property
    def float_audio(self) -> np.ndarray:
        """``(S,)`` float32 in [-1, 1]."""
        return (self.audio.astype(np.float32) / 32768.0).astype(np.float32)


class _Espeak:
    """Lazily initialized per-process handle on libespeak-ng."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pid: int | None = None
        self._lib: ctypes.CDLL | None = None
        self.sample_rate = 0
        self._voice: str | None = None
        # The callback of the synthesis in progress (the C callback dispatches to it).
        self._sink = None
        self._c_callback = _CALLBACK(self._dispatch)

    def _dispatch(self, wav, n, events) -> int:  # called from inside espeak_Synth (same thread)
        if self._sink is not None:
            self._sink(wav, n, events)
        return 0

    def _load(self) -> ctypes.CDLL:
        if self._lib is not None and self._pid == os.getpid():
            return self._lib
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - dependency of the package
            raise EspeakError("espeakng-loader is not installed: `pip install espeakng-loader`") from e
        lib_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise EspeakError(f"cannot load libespeak-ng from {lib_path}: {e}") from e
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        options = espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA | espeakINITIALIZE_DONT_EXIT
        sr = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), options)
        if sr <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {sr}) with data path {data_path}")
        lib.espeak_SetSynthCallback(self._c_callback)
        self._lib, self._pid, self.sample_rate, self._voice = lib, os.getpid(), int(sr), None
        return lib

    def _set_voice(self, lib: ctypes.CDLL, voice: str) -> None:
        if voice == self._voice:
            return
        if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise EspeakError(
                f"eSpeak NG has no voice {voice!r}; use one of list_voices() (e.g. 'en-us', 'en', 'en-gb-x-rp'),"
                " optionally with a variant such as 'en-us+f3'"
            )
        self._voice = voice

    # ---- public operations --------------------------------------------------------------------------
    def phonemize(self, text: str, voice: str) -> str:
        with self._lock:
            lib = self._load()
            self._set_voice(lib, voice)
            raw = text.encode("utf-8")
            buf = ctypes.create_string_buffer(raw)  # NUL-terminated copy eSpeak walks through
            base = ctypes.addressof(buf)
            ptr = ctypes.c_void_p(base)
            clauses: list[str] = []
            consumed = 0
            # One clause per call: loop until eSpeak sets the pointer to NULL (end of text).
            while ptr.value:
                out = lib.espeak_TextToPhonemes(ctypes.byref(ptr), espeakCHARS_UTF8, espeakPHONEMES_IPA)
                end = (ptr.value - base) if ptr.value else len(raw)
                piece = raw[consumed:end].decode("utf-8", errors="ignore")
                if ptr.value:
                    # eSpeak reads one character past the clause end (to see what follows the
                    # punctuation) and keeps it for the next call: it is not part of this clause.
                    piece = piece[:-1]
                piece = piece.rstrip()
                consumed = end
                ipa = (out or b"").decode("utf-8", errors="replace").strip()
                # Re-attach the punctuation that closed this clause (eSpeak drops it from the IPA).
                tail = piece[-1:] if piece and piece[-1] in CLAUSE_PUNCTUATION else ""
                if ipa or tail:
                    clauses.append(ipa + tail)
            return " ".join(clauses)

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> Synthesis:
        if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
            raise ValueError(f"eSpeak rate={rate} words/minute is outside {RATE_RANGE}")
        if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
            raise ValueError(f"eSpeak pitch={pitch} is outside {PITCH_RANGE}")
        with self._lock:
            lib = self._load()
            self._set_voice(lib, voice)
            for param, value in ((espeakRATE, rate), (espeakPITCH, pitch)):
                if lib.espeak_SetParameter(param, int(value), 0) != EE_OK:
                    raise EspeakError(f"espeak_SetParameter({param}, {value}) failed")
            chunks: list[np.ndarray] = []
            events: list[PhonemeEvent] = []
            words: list[int] = []

            def sink(wav, n, evs) -> None:
                if n > 0:
                    chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
                i = 0
                while evs[i].type != EVENT_LIST_TERMINATED:
                    e = evs[i]
                    if e.type == EVENT_PHONEME:
                        name = bytes(e.id).split(b"\0", 1)[0].decode("utf-8", errors="replace")
                        events.append(PhonemeEvent(name, int(e.sample), int(e.text_position)))
                    elif e.type == EVENT_WORD:
                        words.append(int(e.sample))
                    i += 1

            raw = text.encode("utf-8")
            buf = ctypes.create_string_buffer(raw)
            self._sink = sink
            try:
                err = lib.espeak_Synth(buf, len(raw) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, None, None)
                lib.espeak_Synchronize()
            finally:
                self._sink = None
            if err != EE_OK:
                raise EspeakError(f"espeak_Synth failed with code {err} for text {text!r}")
            audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
            return Synthesis(audio.astype(np.int16), self.sample_rate, events, words)

    def native_sample_rate(self) -> int:
        with self._lock:
            self._load()
            return self.sample_rate


_ESPEAK = _Espeak()


def phonemize(text: str, voice: str = "en-us") -> str:
    """IPA for every clause of ``text``; clauses joined by a space, clause punctuation kept."""
    return _ESPEAK.phonemize(text, voice)


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> Synthesis:
    """Speak ``text`` with ``voice`` at ``rate`` words/minute and ``pitch`` (0-100); see ``Synthesis``."""
    return _ESPEAK.synthesize(text, voice, rate, pitch)


def native_sample_rate() -> int:
    """Sample rate of eSpeak's output (22050 Hz for the bundled voices)."""
    return _ESPEAK.native_sample_rate()


def data_path() -> str:
    import espeakng_loader

    return espeakng_loader.get_data_path()


def list_voices(language_prefix: str = "") -> list[str]:
    """Voice (language) names under the bundled ``espeak-ng-data/lang`` whose name starts with the prefix.

    Names are lower-cased as ``espeak_SetVoiceByName`` accepts them (e.g. ``en-us``, ``en-gb-x-rp``).
    """
    root = os.path.join(data_path(), "lang")
    names = []
    for _dirpath, _dirs, files in os.walk(root):
        names.extend(f.lower() for f in files if f.lower().startswith(language_prefix.lower()))
    return sorted(set(names))


def voice_exists(voice: str) -> bool:
    """True when ``espeak_SetVoiceByName`` accepts ``voice`` (variants like ``en-us+f3`` included)."""
    try:
        with _ESPEAK._lock:
            lib = _ESPEAK._load()
            _ESPEAK._set_voice(lib, voice)
        return True
    except EspeakError:
        return False
