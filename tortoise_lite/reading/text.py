"""Reading real text: normalization for speech, sentence and clause splitting, problem reports.

:func:`plan_reading` turns a passage into :class:`Segment` s the model can say one at a time:

1. **Normalize** (:func:`normalize_for_reading`): Unicode clean-up (NFKC, typographic quotes and dashes),
   e-mail addresses and URLs, abbreviations ("Dr." -> "doctor", "e.g." -> "for example"), dates
   ("2021-03-15", "3/15/2021", "March 15th" -> "March fifteenth"), times ("10:30 pm"), decades
   ("1990s"), ranges ("3-5" -> "3 to 5"), currency with scales ("$1.5 million"), units after numbers
   ("5 km"), chapter numerals ("Chapter IV"), symbols (``& @ + = # ° × ÷ /``), then the English number
   expansion of the tokenizers (currency, ordinals, percentages, decimals, years). Formatting marks
   (``* _ ` | ~``) are removed; brackets become parentheses. Blank lines separate paragraphs.
2. **Split** into sentences at ``. ! ?`` (not after an initial like "J."), and a sentence longer than
   ``max_chars`` at clause boundaries (``, ; : -`` and parentheses), then at word boundaries (then, for a
   single "word" longer than ``max_chars``, every ``max_chars`` characters). Nothing is dropped: the
   segments joined with single spaces give back :attr:`ReadingPlan.normalized` (paragraphs joined by spaces).
3. **Check** every segment: characters outside what speech needs and symbols the model's tokenizer
   cannot read are reported by segment number and character position (:class:`ReadingTextError`), or
   removed with a warning when ``unknown="drop"``. A segment of punctuation only joins its neighbour; a
   text with no words at all is an error, never silence.

Each segment ends with a pause chosen by its last punctuation mark (:data:`DEFAULT_PAUSES`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tortoise_lite.text.normalize import (
    expand_numbers_en,
    normalize_unicode,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)

#: seconds of silence after a segment, by how it ends (``paragraph``: after a paragraph's last segment,
#: at least; ``none``: a segment cut at a word boundary). The last segment of a reading gets none.
DEFAULT_PAUSES: dict[str, float] = {
    "sentence": 0.5,  # .
    "question": 0.55,  # ?
    "exclamation": 0.5,  # !
    "ellipsis": 0.7,  # ...
    "semicolon": 0.35,  # ;
    "colon": 0.35,  # :
    "comma": 0.2,  # ,
    "dash": 0.25,  # -
    "parenthesis": 0.2,  # )
    "none": 0.08,  # cut at a word boundary
    "paragraph": 0.9,  # end of a paragraph
}
#: characters a segment may contain after normalization (letters of any script are checked by the tokenizer)
SPEECH_PUNCTUATION = set(" .,;:!?'\"-()")
UNKNOWN_MODES = ("error", "drop")


class ReadingTextError(ValueError):
    """The text cannot be read as given; the message names the segment, the position and what to do."""


@dataclass(frozen=True)
class Segment:
    """One unit of generation: ``text`` (normalized), its ``index`` in the reading, the ``paragraph`` it
    belongs to, how it was cut (``"sentence"``, ``"clause"``, ``"word"`` or ``"characters"``) and the
    ``pause`` in seconds that follows it."""

    index: int
    text: str
    paragraph: int
    cut: str
    pause: float
    ends_paragraph: bool = False


@dataclass
class ReadingPlan:
    """What :func:`plan_reading` returns: the normalized text, its segments and the warnings."""

    source: str
    normalized: str
    segments: list[Segment]
    warnings: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.segments]


# ---------------------------------------------------------------------------------------------------
# normalization
# ---------------------------------------------------------------------------------------------------
_MONTHS = "January February March April May June July August September October November December".split()
_MONTH_ABBR = {m[:3]: m for m in _MONTHS} | {"Sept": "September"}
_MONTH_RE = "|".join(_MONTHS)

# (regex, replacement); ``.`` after the abbreviation is consumed
_TITLES = {
    "Mr": "mister",
    "Mrs": "missus",
    "Ms": "miz",
    "Dr": "doctor",
    "Prof": "professor",
    "Capt": "captain",
    "Gen": "general",
    "Lt": "lieutenant",
    "Col": "colonel",
    "Sgt": "sergeant",
    "Rev": "reverend",
    "Hon": "honorable",
    "Gov": "governor",
    "Sen": "senator",
    "Rep": "representative",
    "Mt": "mount",
    "Ft": "fort",
}
# abbreviations that may end a sentence: the period stays when a capital or the end follows
_TERMINAL = {
    "etc": "et cetera",
    "Inc": "incorporated",
    "Ltd": "limited",
    "Co": "company",
    "Corp": "corporation",
    "Jr": "junior",
    "Sr": "senior",
    "Ave": "avenue",
    "Rd": "road",
    "Blvd": "boulevard",
    "approx": "approximately",
    "dept": "department",
    "Dept": "department",
    "vs": "versus",
    "Fig": "figure",
    "fig": "figure",
    "Vol": "volume",
    "vol": "volume",
    "Ch": "chapter",
    "ch": "chapter",
}
_LATIN = [
    (re.compile(r"\be\.\s?g\.(,)?", re.I), "for example,"),
    (re.compile(r"\bi\.\s?e\.(,)?", re.I), "that is,"),
    (re.compile(r"\bcf\.", re.I), "compare"),
    (re.compile(r"\bviz\.", re.I), "namely"),
]
_UNITS = {
    "km/h": "kilometers per hour",
    "mph": "miles per hour",
    "km": "kilometers",
    "kg": "kilograms",
    "cm": "centimeters",
    "mm": "millimeters",
    "mg": "milligrams",
    "ml": "milliliters",
    "lbs": "pounds",
    "lb": "pounds",
    "ft": "feet",
    "oz": "ounces",
    "kHz": "kilohertz",
    "Hz": "hertz",
    "GB": "gigabytes",
    "MB": "megabytes",
}
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_SYMBOLS = {
    "&": " and ",
    "@": " at ",
    "+": " plus ",
    "=": " equals ",
    "×": " times ",
    "÷": " divided by ",
    "°": " degrees ",
    "§": " section ",
    "¶": " paragraph ",
    "™": "",
    "®": "",
    "©": " copyright ",
}
_FRACTIONS = {(1, 2): "one half", (1, 3): "one third", (2, 3): "two thirds", (1, 4): "one quarter",
              (3, 4): "three quarters"}  # fmt: skip
_FORMATTING_RE = re.compile(r"[*_`|]+|~(?!\s?\d)")
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s]+[^\s.,;:!?)\"']")


def _roman_value(s: str) -> int | None:
    if not s or not re.fullmatch(r"M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})", s):
        return None
    total, prev = 0, 0
    for ch in reversed(s):
        v = _ROMAN[ch]
        total = total - v if v < prev else total + v
        prev = max(prev, v)
    return total or None


def _spell_web(s: str) -> str:
    s = re.sub(r"^https?://", "", s)
    s = s.replace(".", " dot ").replace("/", " slash ").replace("@", " at ")
    s = re.sub(r"[-_]", " ", s)
    return " " + re.sub(r"[^\w\s]", " ", s) + " "


def _date_words(month: int, day: int, year: int | None) -> str:
    words = f"{_MONTHS[month - 1]} {ordinal_to_words(day)}"
    return words + (f", {year_to_words(year)}" if year is not None else "")


def _numeric_date(m: re.Match) -> str:
    a, b, y = int(m.group(1)), int(m.group(2)), m.group(3)
    year = int(y) + (2000 if len(y) == 2 and int(y) < 50 else 1900 if len(y) == 2 else 0)
    month, day = (a, b) if a <= 12 else (b, a)  # US order unless the first number cannot be a month
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0).replace("/", " slash ")
    return _date_words(month, day, year)


def _iso_date(m: re.Match) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return f"{m.group(1)} {m.group(2)} {m.group(3)}"
    return _date_words(mo, d, y)


def _time(m: re.Match) -> str:
    h, mins, suffix = int(m.group(1)), int(m.group(2)), (m.group(3) or "").lower().replace(".", "")
    if h > 24 or mins > 59:
        return m.group(0).replace(":", " ")
    words = number_to_words(h)
    if mins == 0:
        words += "" if suffix else " o'clock"
    elif mins < 10:
        words += " oh " + number_to_words(mins)
    else:
        words += " " + number_to_words(mins)
    if suffix:
        words += " " + " ".join(suffix)  # "p m"
    return words


def _decade(m: re.Match) -> str:
    n = int(m.group(1))
    words = year_to_words(n) if len(m.group(1)) == 4 else number_to_words(n)
    last = words.split()[-1]
    plural = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return " ".join(words.split()[:-1] + [plural])


def _scaled_currency(m: re.Match) -> str:
    names = {"$": "dollars", "£": "pounds", "€": "euros", "¥": "yen"}
    return f"{m.group(2)} {m.group(3)} {names[m.group(1)]}"


def _fraction(m: re.Match) -> str:
    a, b = int(m.group(1)), int(m.group(2))
    if (a, b) in _FRACTIONS:
        return _FRACTIONS[(a, b)]
    return f"{number_to_words(a)} over {number_to_words(b)}"


def normalize_paragraph(text: str) -> str:
    """One paragraph of raw text -> words and speech punctuation (see the module docstring)."""
    text = normalize_unicode(text)
    text = _EMAIL_RE.sub(lambda m: _spell_web(m.group(0)), text)
    text = _URL_RE.sub(lambda m: _spell_web(m.group(0)), text)
    for rx, rep in _LATIN:
        text = rx.sub(rep, text)
    for abbr, word in _TITLES.items():  # capitalized like the title: a sentence may start with it
        text = re.sub(rf"\b{abbr}\.(?=\s|$)", word.capitalize(), text)
    for abbr, word in _TERMINAL.items():
        # keep the period when the abbreviation ends the sentence (a capital or the end follows)
        text = re.sub(rf"\b{abbr}\.(?=\s+[A-Z\"']|\s*$)", word + ".", text)
        text = re.sub(rf"\b{abbr}\.", word, text)
    text = re.sub(r"\b[Nn]o\.\s?(?=\d)", "number ", text)
    text = re.sub(
        r"\b(\d{1,2}(?::\d{2})?)\s?([ap])\.?m\.?(?=\W|$)", lambda m: f"{m.group(1)} {m.group(2)}m", text
    )
    text = re.sub(r"(?<![\d:])(\d{1,2}):(\d{2})(?:\s?([ap]m))?\b(?!:)", _time, text, flags=re.I)
    text = re.sub(
        r"\b(\d{1,2}) ([ap])m\b", lambda m: f"{number_to_words(int(m.group(1)))} {m.group(2)} m", text
    )
    text = re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", _iso_date, text)
    text = re.sub(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b", _numeric_date, text)
    abbr_months = "|".join(_MONTH_ABBR)
    text = re.sub(rf"\b({abbr_months})\.(?=\s?\d)", lambda m: _MONTH_ABBR[m.group(1)], text)
    text = re.sub(
        rf"\b({_MONTH_RE})\s(\d{{1,2}})(?:st|nd|rd|th)?\b(?!:)",
        lambda m: f"{m.group(1)} {ordinal_to_words(int(m.group(2)))}",
        text,
    )
    text = re.sub(
        rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s(?:of\s)?({_MONTH_RE})\b",
        lambda m: f"the {ordinal_to_words(int(m.group(1)))} of {m.group(2)}",
        text,
    )
    text = re.sub(r"(?<!\w)'(\d0)s\b", lambda m: _decade(m), text)
    text = re.sub(r"\b(\d{4}|\d0)s\b", _decade, text)
    text = re.sub(
        r"([$£€¥])\s?(\d+(?:\.\d+)?)\s?(thousand|million|billion|trillion)\b", _scaled_currency, text
    )
    text = re.sub(r"¥\s?(\d[\d,]*)", r"\1 yen", text)
    text = re.sub(r"(\d+)\s?¢", r"\1 cents", text)
    text = re.sub(r"°\s?C\b", " degrees Celsius", text)
    text = re.sub(r"°\s?F\b", " degrees Fahrenheit", text)
    text = re.sub(r"(?<![\w/])(\d)/(\d{1,2})(?![\w/])", _fraction, text)
    text = re.sub(r"(\d)\s?-\s?(?=\d)", r"\1 to ", text)  # ranges: 1990-1995, pages 3-5
    text = re.sub(r"(^|[\s(])-(?=\d)", r"\1minus ", text)
    text = re.sub(r"#\s?(?=\d)", "number ", text)
    for unit, words in _UNITS.items():
        text = re.sub(rf"(\d)\s?{re.escape(unit)}\b", rf"\1 {words}", text)
    text = re.sub(
        r"\b(Chapter|Book|Part|Volume|Act|Scene|Section|Book)\s([IVXLCDM]+)\b",
        lambda m: f"{m.group(1)} {number_to_words(v)}" if (v := _roman_value(m.group(2))) else m.group(0),
        text,
    )
    text = re.sub(r"~\s?(?=\d)", "about ", text)
    for sym, words in _SYMBOLS.items():
        text = text.replace(sym, words)
    text = re.sub(r"(?<=\w)/(?=\w)", " or ", text)  # and/or, he/she
    text = text.replace("[", "(").replace("]", ")").replace("{", "(").replace("}", ")")
    text = _FORMATTING_RE.sub(" ", text)
    text = expand_numbers_en(text)
    text = re.sub(r"\s+([,.;:!?)])", r"\1", text)  # "word ," -> "word,"
    text = re.sub(r"\(\s+", "(", text)
    return re.sub(r"\s+", " ", text).strip()


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines; single newlines inside a paragraph are spaces."""
    parts = re.split(r"\n[ \t\r\f\v]*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [p for p in (" ".join(x.split()) for x in parts) if p]


# ---------------------------------------------------------------------------------------------------
# splitting
# ---------------------------------------------------------------------------------------------------
_SENTENCE_END_RE = re.compile(r"[.!?]+[\"')]*(?=\s)")
_CLAUSE_END_RE = re.compile(r"(?:[,;:][\"')]*|\)|\s-)(?=\s)")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one normalized paragraph (whitespace between them removed, nothing else)."""
    out, start = [], 0
    for m in _SENTENCE_END_RE.finditer(paragraph):
        end = m.end()
        before = paragraph[start : m.start()].split()
        last_word = before[-1] if before else ""
        nxt = paragraph[end:].lstrip()[:1]
        if re.fullmatch(r"[A-Z]", last_word) and m.group(0) == ".":
            continue  # an initial: "J. R. R. Tolkien"
        if nxt and nxt.islower():
            continue  # "... and then" / "wait... what"
        out.append(paragraph[start:end].strip())
        start = end
    tail = paragraph[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Greedy: consecutive pieces joined by spaces while the result stays within ``max_chars``."""
    chunks: list[str] = []
    cur = ""
    for p in pieces:
        if cur and len(cur) + 1 + len(p) > max_chars:
            chunks.append(cur)
            cur = p
        else:
            cur = f"{cur} {p}" if cur else p
    if cur:
        chunks.append(cur)
    return chunks


def _pack_balanced(words: list[str], max_chars: int) -> list[str]:
    """Like :func:`_pack` but aiming at pieces of equal length (no short last piece)."""
    total = len(" ".join(words))
    n = -(-total // max_chars)
    target = max(1, -(-total // n))
    chunks: list[str] = []
    cur = ""
    for w in words:
        nxt = f"{cur} {w}" if cur else w
        if cur and (len(nxt) > max_chars or (len(cur) >= target and len(chunks) < n - 1)):
            chunks.append(cur)
            cur = w
        else:
            cur = nxt
    if cur:
        chunks.append(cur)
    return chunks


def split_long(sentence: str, max_chars: int) -> list[tuple[str, str]]:
    """``[(chunk, cut)]``: the sentence itself when short enough, else clause chunks, then word chunks,
    then fixed-width pieces of an over-long word. ``cut`` says how each chunk ends."""
    if len(sentence) <= max_chars:
        return [(sentence, "sentence")]
    clauses, start = [], 0
    for m in _CLAUSE_END_RE.finditer(sentence):
        clauses.append(sentence[start : m.end()].strip())
        start = m.end()
    clauses.append(sentence[start:].strip())
    clauses = [c for c in clauses if c]
    out: list[tuple[str, str]] = []
    for chunk in _pack(clauses, max_chars):
        if len(chunk) <= max_chars:
            out.append((chunk, "clause"))
            continue
        words: list[str] = []
        for w in chunk.split():
            words += (
                [w[i : i + max_chars] for i in range(0, len(w), max_chars)] if len(w) > max_chars else [w]
            )
        packed = _pack_balanced(words, max_chars)
        for k, piece in enumerate(packed):
            long_word = any(len(w) > max_chars for w in chunk.split() if piece in w)
            out.append((piece, "characters" if long_word else "word" if k < len(packed) - 1 else "clause"))
    out[-1] = (out[-1][0], "sentence")
    return out


def pause_after(text: str, pauses: Mapping[str, float], cut: str) -> float:
    """Seconds of silence after a segment that ends like ``text`` (see :data:`DEFAULT_PAUSES`)."""
    t = text.rstrip("\"'")
    if t.endswith("..."):
        key = "ellipsis"
    elif t.endswith("?"):
        key = "question"
    elif t.endswith("!"):
        key = "exclamation"
    elif t.endswith("."):
        key = "sentence"
    elif t.endswith(";"):
        key = "semicolon"
    elif t.endswith(":"):
        key = "colon"
    elif t.endswith(","):
        key = "comma"
    elif t.endswith("-"):
        key = "dash"
    elif t.endswith(")"):
        key = "parenthesis"
    else:
        key = "sentence" if cut == "sentence" else "none"
    return float(pauses.get(key, DEFAULT_PAUSES[key]))


def _has_word(s: str) -> bool:
    return any(c.isalnum() for c in s)


def _merge_wordless(chunks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A chunk with no letters ("!!!", "...", "(") joins the one before it (or after it, if first)."""
    out: list[tuple[str, str]] = []
    pending = ""
    for text, cut in chunks:
        if not _has_word(text):
            if out:
                out[-1] = (f"{out[-1][0]} {text}", cut)
            else:
                pending = f"{pending} {text}".strip()
            continue
        if pending:
            text, pending = f"{pending} {text}", ""
        out.append((text, cut))
    if pending and out:
        out[-1] = (f"{out[-1][0]} {pending}", out[-1][1])
    return out


# ---------------------------------------------------------------------------------------------------
# checking
# ---------------------------------------------------------------------------------------------------
def _unknown_chars(segment: str) -> list[tuple[int, str]]:
    return [(i, c) for i, c in enumerate(segment) if not (c.isalpha() or c in SPEECH_PUNCTUATION)]


def _describe(c: str) -> str:
    return f"{c!r} (U+{ord(c):04X})"


def _tokenizer_unknowns(tokenizer: Any, segment: str) -> list[tuple[int, str, list[str]]]:
    """``[(position, word, symbols)]`` of the words whose tokens the vocabulary lacks."""
    if tokenizer is None or not tokenizer.unknown_symbols(segment):
        return []
    out, pos = [], 0
    for word in segment.split(" "):
        bad = tokenizer.unknown_symbols(word) if word.strip(" .,;:!?'\"-()") else []
        if bad:
            out.append((pos, word, bad))
        pos += len(word) + 1
    if not out:  # the unknown symbol comes from the words together (eSpeak context): name the segment
        out.append((0, segment, tokenizer.unknown_symbols(segment)))
    return out


def _preview(s: str, width: int = 60) -> str:
    return repr(s if len(s) <= width else s[: width - 3] + "...")


def plan_reading(
    text: str,
    tokenizer: Any = None,
    max_chars: int = 100,
    pauses: Mapping[str, float] | None = None,
    unknown: str = "error",
) -> ReadingPlan:
    """Normalize ``text``, split it into segments and check them against ``tokenizer``.

    Args:
        text: the passage (paragraphs separated by blank lines).
        tokenizer: the model's tokenizer (``unknown_symbols`` is used to check each segment); None skips it.
        max_chars: longest segment in characters (longer sentences are split at clauses, then words).
        pauses: seconds after each kind of ending (keys of :data:`DEFAULT_PAUSES`; missing keys default).
        unknown: ``"error"`` (raise :class:`ReadingTextError` naming every unreadable symbol by segment and
            position) or ``"drop"`` (remove them, with a warning each).
    Raises:
        ReadingTextError: empty text, no words, unreadable symbols (``unknown="error"``), bad settings.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if unknown not in UNKNOWN_MODES:
        raise ReadingTextError(f"unknown={unknown!r}: choose one of {', '.join(UNKNOWN_MODES)}")
    if int(max_chars) < 8:
        raise ReadingTextError(f"max_chars={max_chars} is too small to hold a word; use 40 or more")
    pauses = {**DEFAULT_PAUSES, **dict(pauses or {})}
    bad_keys = sorted(set(pauses) - set(DEFAULT_PAUSES))
    if bad_keys:
        raise ReadingTextError(f"pauses: unknown key(s) {bad_keys}; known: {', '.join(DEFAULT_PAUSES)}")
    for k, v in pauses.items():
        if not (float(v) >= 0.0):
            raise ReadingTextError(f"pauses.{k}={v}: a pause is a number of seconds >= 0")
    if tokenizer is not None and getattr(tokenizer, "kind", "") == "notes":
        raise ReadingTextError(
            "this model reads note names (a tones model): long-form reading needs a speech model "
            "(phoneme or character tokenizer); use synthesize text=... for notes"
        )
    if not text.strip():
        raise ReadingTextError("nothing to read: the text is empty or only whitespace")

    paragraphs = [normalize_paragraph(p) for p in split_paragraphs(text)]
    warnings: list[str] = []

    def segments_of(paras: list[str]) -> list[tuple[str, str, int, bool]]:
        out = []
        for pi, para in enumerate(paras):
            chunks: list[tuple[str, str]] = []
            for sentence in split_sentences(para):
                chunks += split_long(sentence, int(max_chars))
            chunks = _merge_wordless(chunks)
            out += [(t, c, pi, k == len(chunks) - 1) for k, (t, c) in enumerate(chunks)]
        return out

    raw = segments_of(paragraphs)
    problems: list[str] = []
    drops: dict[int, set[str]] = {}
    for k, (seg, _, pi, _) in enumerate(raw):
        for pos, c in _unknown_chars(seg):
            problems.append(
                f"segment {k} (paragraph {pi}), character {pos}: {_describe(c)} in {_preview(seg)}"
            )
            drops.setdefault(pi, set()).add(c)
    if problems and unknown == "error":
        raise ReadingTextError(
            f"{len(problems)} symbol(s) the reader cannot say: " + "; ".join(problems[:8])
            + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
            + ". Replace them in the text, or pass unknown=drop to remove them (each removal is reported)"
        )  # fmt: skip
    if problems:
        warnings += [f"dropped {p}" for p in problems]
        paragraphs = [
            re.sub(r"\s+", " ", "".join(c for c in p if c not in drops.get(pi, ()))).strip()
            for pi, p in enumerate(paragraphs)
        ]
        raw = segments_of(paragraphs)
    if not raw:
        shown = " ".join(text.split())
        raise ReadingTextError(
            f"nothing to read: the text has no words, only symbols ({_preview(shown)}); give some words"
        )
    tok_problems = []
    for k, (seg, _, pi, _) in enumerate(raw):
        for pos, word, syms in _tokenizer_unknowns(tokenizer, seg):
            tok_problems.append(
                f"segment {k} (paragraph {pi}), character {pos}: {_preview(word)} gives {syms}"
            )
    if tok_problems:
        raise ReadingTextError(
            f"the model's {getattr(tokenizer, 'kind', '')} tokenizer cannot read: " + "; ".join(tok_problems[:8])
            + ". Rewrite those words, or train with a vocabulary that has the symbols (text.tokenizer.extra_symbols)"
        )  # fmt: skip
    for k, (_seg, cut, pi, _) in enumerate(raw):
        if cut == "characters":
            warnings.append(
                f"segment {k} (paragraph {pi}): a word of more than {max_chars} characters was cut into pieces"
            )
    segments = []
    for k, (seg, cut, pi, last_in_para) in enumerate(raw):
        pause = pause_after(seg, pauses, cut)
        if k == len(raw) - 1:
            pause = 0.0
        elif last_in_para:
            pause = max(pause, float(pauses["paragraph"]))
        segments.append(Segment(k, seg, pi, cut, pause, last_in_para))
    normalized = " ".join(p for p in paragraphs if p)
    return ReadingPlan(source=text, normalized=normalized, segments=segments, warnings=warnings)


def read_text_file(path: Any, encoding: str = "utf-8") -> str:
    """A text file's contents; a file that is not valid ``encoding`` is a :class:`ReadingTextError`
    naming the file, the line and the byte (and how to choose another encoding)."""
    from pathlib import Path

    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"textfile={p}: no such file")
    data = p.read_bytes()
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(enc)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1)
        raise ReadingTextError(
            f"textfile={p} is not valid {encoding}: byte 0x{data[e.start]:02x} at line {line}, byte {col} "
            f"(offset {e.start}); save the file as UTF-8, or pass encoding=latin-1 (or the file's encoding)"
        ) from None
    except LookupError:
        raise ReadingTextError(
            f"encoding={encoding!r} is not a codec Python knows (e.g. utf-8, latin-1, cp1252)"
        ) from None
    if "\x00" in text:
        raise ReadingTextError(
            f"textfile={p} contains NUL bytes: it is not a text file (or is UTF-16: pass encoding=utf-16)"
        )
    return text
