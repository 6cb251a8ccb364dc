"""Tokenizers: characters, IPA phonemes (eSpeak NG) and note names (the ``tones`` corpus).

Every tokenizer has ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``symbols`` (index 0 is
``"<pad>"``, so ``pad_id == 0``), ``__len__`` and ``to_dict()``; ``tokenizer_from_dict(d)`` rebuilds it
with the exact same vocabulary (the dict is stored in checkpoints, so a model keeps its ids).

Unknown symbols are never dropped silently: ``encode`` raises ``UnknownSymbolError`` naming them,
unless the configuration maps them explicitly with ``unknown_map`` (``{"ö": "o", "*": ""}``; an empty
replacement is an explicit, configured deletion).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from tortoise_lite.text.normalize import expand_numbers_en, normalize_unicode

PAD = "<pad>"

# Characters: letters, digits are spelled out for English, punctuation is kept.
CHAR_PUNCTUATION = " !'\"(),-.:;?"
CHAR_LETTERS = "abcdefghijklmnopqrstuvwxyz"

# Phonemes: code points eSpeak NG's IPA output is made of (letters, IPA extensions, modifiers,
# combining diacritics) plus the clause punctuation the phonemizer re-attaches and the word space.
IPA_PUNCTUATION = " !,.:;?"
IPA_SYMBOLS = (
    "abcdefhijklmnopqrstuvwxyz"
    "æçðøħŋœɐɑɒɓɔɕɖɗɘəɚɛɜɝɞɟɠɡɢɣɤɥɦɧɨɪɫɬɭɮɯɰɱɲɳɴɵɶɸɹɺɻɽɾʀʁʂʃʄʈʉʊʋʌʍʎʏʐʑʒʔʕʘʙʛʜʝʟʡʢ"
    "ʰʱʲʷˠˤʼˈˌːˑ˞βθχᵻᵊⱱ"
    "\u0303\u0329\u032a\u032f\u0325\u0361\u0306\u0308"
)

# Notes: 12 pitch classes (sharps; flats are mapped to their enharmonic sharp) over octaves 0-8.
NOTE_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
NOTE_OCTAVES = range(0, 9)
NOTE_REST = "R"
_FLAT_TO_SHARP = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E"}
_NOTE_RE = re.compile(r"^([A-Ga-g])([#b]?)(-?\d)$")


class UnknownSymbolError(ValueError):
    """The text contains symbols outside the vocabulary and no mapping was configured for them."""

    def __init__(self, unknown: Sequence[str], text: str, tokenizer: str):
        self.unknown = sorted(set(unknown))
        shown = ", ".join(f"{s!r} (U+{ord(s[0]):04X})" if len(s) == 1 else repr(s) for s in self.unknown)
        super().__init__(
            f"{tokenizer} tokenizer: unknown symbol(s) {shown} in {text!r}; add them to the vocabulary "
            "(extra_symbols) or map them explicitly (unknown_map, e.g. {'ö': 'o'} or {'*': ''} to delete)"
        )


class Tokenizer:
    """Common machinery: a symbol list, ``to_symbols`` (text -> symbol strings) done by subclasses."""

    kind = "base"
    pad_id = 0

    def __init__(
        self,
        symbols: Sequence[str],
        extra_symbols: Iterable[str] = (),
        unknown_map: dict[str, str] | None = None,
    ) -> None:
        syms = [PAD] + [s for s in symbols if s != PAD]
        for s in extra_symbols:
            if s not in syms:
                syms.append(s)
        if len(set(syms)) != len(syms):
            dup = sorted({s for s in syms if syms.count(s) > 1})
            raise ValueError(f"{self.kind} tokenizer: duplicate symbols {dup} in the vocabulary")
        self.symbols: list[str] = syms
        self._ids = {s: i for i, s in enumerate(syms)}
        self.unknown_map: dict[str, str] = dict(unknown_map or {})
        for src, dst in self.unknown_map.items():
            bad = [c for c in self._split(dst) if c not in self._ids]
            if bad:
                raise ValueError(
                    f"{self.kind} tokenizer: unknown_map maps {src!r} to {dst!r}, which contains symbols "
                    f"{bad} that are not in the vocabulary either"
                )

    # ---- to override -------------------------------------------------------------------------------
    def to_symbols(self, text: str) -> list[str]:
        """Text -> list of symbol strings (before the vocabulary check)."""
        raise NotImplementedError

    def _split(self, s: str) -> list[str]:
        """How a replacement string from ``unknown_map`` splits into symbols."""
        return list(s)

    def _settings(self) -> dict[str, Any]:
        return {}

    # ---- common API ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def unknown_symbols(self, text: str) -> list[str]:
        """Symbols of ``text`` outside the vocabulary and not mapped (what ``encode`` would reject)."""
        return sorted({s for s in self.to_symbols(text) if s not in self._ids and s not in self.unknown_map})

    def symbols_of(self, text: str) -> list[str]:
        """``to_symbols`` with ``unknown_map`` applied; raises ``UnknownSymbolError``."""
        out: list[str] = []
        unknown: list[str] = []
        for s in self.to_symbols(text):
            if s in self._ids:
                out.append(s)
            elif s in self.unknown_map:
                out.extend(self._split(self.unknown_map[s]))
            else:
                unknown.append(s)
        if unknown:
            raise UnknownSymbolError(unknown, text, self.kind)
        return out

    def encode(self, text: str) -> list[int]:
        """Text -> token ids (no padding id inside)."""
        return [self._ids[s] for s in self.symbols_of(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text of symbols (padding ids are skipped)."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.pad_id:
                continue
            if not 0 <= i < len(self.symbols):
                raise ValueError(
                    f"{self.kind} tokenizer: id {i} outside the vocabulary of {len(self)} symbols"
                )
            out.append(self.symbols[i])
        return self._join(out)

    def _join(self, symbols: list[str]) -> str:
        return "".join(symbols)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "symbols": list(self.symbols),
            "unknown_map": dict(self.unknown_map),
            **self._settings(),
        }

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({settings}, {len(self)} symbols)"


class CharTokenizer(Tokenizer):
    """Characters of the normalized text: NFKC, lower-cased, English numbers spelled out, punctuation kept.

    ``language="en"`` expands digits to words (other languages keep digits, which must then be in the
    vocabulary). ``fold_accents`` turns "café" into "cafe" (default for English).
    """

    kind = "chars"

    def __init__(
        self,
        language: str = "en",
        lowercase: bool = True,
        fold_accents: bool | None = None,
        symbols: Sequence[str] | None = None,
        extra_symbols: Iterable[str] = (),
        unknown_map: dict[str, str] | None = None,
    ) -> None:
        self.language = language
        self.lowercase = lowercase
        self.fold_accents = (language == "en") if fold_accents is None else bool(fold_accents)
        if symbols is None:
            symbols = list(CHAR_PUNCTUATION + CHAR_LETTERS)
            if not lowercase:
                symbols += list(CHAR_LETTERS.upper())
            if language != "en":
                symbols += list("0123456789")
        super().__init__(symbols, extra_symbols, unknown_map)

    def normalize(self, text: str) -> str:
        text = normalize_unicode(text, fold_accents=self.fold_accents)
        if self.language == "en":
            text = expand_numbers_en(text)
        if self.lowercase:
            text = text.lower()
        return re.sub(r"\s+", " ", text).strip()

    def to_symbols(self, text: str) -> list[str]:
        return list(self.normalize(text))

    def _settings(self) -> dict[str, Any]:
        return {"language": self.language, "lowercase": self.lowercase, "fold_accents": self.fold_accents}


class PhonemeTokenizer(Tokenizer):
    """IPA code points from eSpeak NG for the whole text (every clause), clause punctuation kept.

    One token per Unicode code point of eSpeak's IPA (stress marks and length marks are tokens of their
    own, words are separated by the space token), which keeps the vocabulary small and closed.
    """

    kind = "phonemes"

    def __init__(
        self,
        voice: str = "en-us",
        symbols: Sequence[str] | None = None,
        extra_symbols: Iterable[str] = (),
        unknown_map: dict[str, str] | None = None,
        expand_numbers: bool = True,
    ) -> None:
        self.voice = voice
        self.expand_numbers = expand_numbers
        if symbols is None:
            symbols = list(IPA_PUNCTUATION + IPA_SYMBOLS)
        super().__init__(symbols, extra_symbols, unknown_map)

    def normalize(self, text: str) -> str:
        text = normalize_unicode(text)
        if self.expand_numbers and self.voice.split("-")[0].split("+")[0] == "en":
            # Our expansion matches the char tokenizer's reading; eSpeak would read them too, but
            # differently ("1984" -> "one thousand nine hundred..." for some voices).
            text = expand_numbers_en(text)
        return text

    def phonemize(self, text: str) -> str:
        """The IPA string whose code points are the tokens."""
        from tortoise_lite.text import espeak

        return espeak.phonemize(self.normalize(text), self.voice)

    def to_symbols(self, text: str) -> list[str]:
        return list(unicodedata.normalize("NFC", self.phonemize(text)))

    def _settings(self) -> dict[str, Any]:
        return {"voice": self.voice, "expand_numbers": self.expand_numbers}


def note_name(name: str) -> str:
    """Canonical note token: "eb4" -> "D#4", "C4" -> "C4"; raises ValueError for anything else."""
    if name.upper() == NOTE_REST:
        return NOTE_REST
    m = _NOTE_RE.match(name)
    if not m:
        raise ValueError(f"{name!r} is not a note name like 'C4', 'F#3' or 'Bb5' (or 'R' for a rest)")
    letter, accidental, octave = m.group(1).upper(), m.group(2), m.group(3)
    pc = letter + accidental
    if accidental == "b":
        pc = _FLAT_TO_SHARP[pc]
        if letter == "C":  # Cb4 is B3
            octave = str(int(octave) - 1)
    return f"{pc}{octave}"


def note_to_midi(name: str) -> int:
    """MIDI number of a note ("A4" -> 69, "C4" -> 60)."""
    canon = note_name(name)
    if canon == NOTE_REST:
        raise ValueError("a rest has no pitch")
    pc, octave = canon[:-1], int(canon[-1])
    return 12 * (octave + 1) + NOTE_CLASSES.index(pc)


def midi_to_note(midi: int) -> str:
    return f"{NOTE_CLASSES[midi % 12]}{midi // 12 - 1}"


class NoteTokenizer(Tokenizer):
    """Whitespace-separated note names ("C4 E4 G4", flats allowed, "R" = rest); one token per note.

    A tones item's text is its note list, so its durations (frames per note) align with these tokens.
    """

    kind = "notes"

    def __init__(
        self,
        symbols: Sequence[str] | None = None,
        extra_symbols: Iterable[str] = (),
        unknown_map: dict[str, str] | None = None,
    ) -> None:
        if symbols is None:
            symbols = [NOTE_REST] + [f"{pc}{o}" for o in NOTE_OCTAVES for pc in NOTE_CLASSES]
        super().__init__(symbols, extra_symbols, unknown_map)

    def to_symbols(self, text: str) -> list[str]:
        out = []
        for word in text.split():
            try:
                out.append(note_name(word))
            except ValueError:
                out.append(word)  # reported as unknown by symbols_of (or mapped)
        return out

    def _split(self, s: str) -> list[str]:
        return s.split()

    def _join(self, symbols: list[str]) -> str:
        return " ".join(symbols)


TOKENIZERS: dict[str, type[Tokenizer]] = {
    "chars": CharTokenizer,
    "phonemes": PhonemeTokenizer,
    "notes": NoteTokenizer,
}


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict`` (same symbols, same ids)."""
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer type {kind!r} in saved vocabulary; known: {sorted(TOKENIZERS)}")
    return TOKENIZERS[kind](**d)
