"""Text normalization before tokenization: Unicode clean-up and English number expansion.

``normalize_unicode``: NFKC, typographic quotes/dashes/ellipses to ASCII, optional accent folding,
whitespace collapsed. ``expand_numbers_en``: "$3.50" -> "three dollars fifty cents", "1st" -> "first",
"1,234" -> "one thousand two hundred thirty four", "1984" -> "nineteen eighty four", "7%" -> "seven
percent", "2.5" -> "two point five".
"""

from __future__ import annotations

import re
import unicodedata

_TYPOGRAPHIC = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2012": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u00a0": " ",
}
_TYPO_RE = re.compile("|".join(map(re.escape, _TYPOGRAPHIC)))
_WS_RE = re.compile(r"\s+")


def normalize_unicode(text: str, fold_accents: bool = False) -> str:
    """NFKC + ASCII quotes/dashes + collapsed whitespace; ``fold_accents`` strips combining marks (é -> e)."""
    text = unicodedata.normalize("NFKC", text)
    text = _TYPO_RE.sub(lambda m: _TYPOGRAPHIC[m.group(0)], text)
    if fold_accents:
        decomposed = unicodedata.normalize("NFKD", text)
        text = unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))
    return _WS_RE.sub(" ", text).strip()


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion"]
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """Cardinal English words for an integer: 1234 -> "one thousand two hundred thirty four"."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n == 0:
        return "zero"
    groups: list[int] = []
    while n:
        groups.append(n % 1000)
        n //= 1000
    if len(groups) > len(_SCALES):
        # Beyond the named scales read the digits one by one (rare: serial numbers and the like).
        return " ".join(_ONES[int(d)] for d in str(sum(g * 1000**i for i, g in enumerate(groups))))
    words: list[str] = []
    for i in range(len(groups) - 1, -1, -1):
        if groups[i]:
            words += _below_thousand(groups[i])
            if _SCALES[i]:
                words.append(_SCALES[i])
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """1 -> "first", 22 -> "twenty second", 100 -> "one hundredth"."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_to_words(n: int) -> str:
    """1984 -> "nineteen eighty four", 1900 -> "nineteen hundred", 2005 -> "two thousand five"."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return number_to_words(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return number_to_words(hi) + " hundred"
    lo_words = number_to_words(lo) if lo >= 10 else "oh " + number_to_words(lo)
    return number_to_words(hi) + " " + lo_words


_CURRENCY_RE = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b")
_CURRENCY_NAMES = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent")}
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d+)\b")
_THOUSANDS_RE = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_RE = re.compile(r"\d+")


def _plural(word: str, n: int) -> str:
    if n == 1:
        return word
    return "pence" if word == "penny" else word + "s"


def _currency(m: re.Match) -> str:
    major_name, minor_name = _CURRENCY_NAMES[m.group(1)]
    major = int(m.group(2).replace(",", ""))
    minor = int((m.group(3) or "0").ljust(2, "0"))
    parts = []
    if major or not minor:
        parts.append(f"{number_to_words(major)} {_plural(major_name, major)}")
    if minor:
        parts.append(f"{number_to_words(minor)} {_plural(minor_name, minor)}")
    return " ".join(parts)


def _integer(m: re.Match) -> str:
    digits = m.group(0)
    n = int(digits)
    if len(digits) == 4 and 1100 <= n <= 2099:
        return year_to_words(n)
    if len(digits) > 1 and digits.startswith("0"):
        # "007" / phone-like strings: read digit by digit
        return " ".join(_ONES[int(d)] for d in digits)
    return number_to_words(n)


def _decimal(m: re.Match) -> str:
    return f"{number_to_words(int(m.group(1)))} point " + " ".join(_ONES[int(d)] for d in m.group(2))


def expand_numbers_en(text: str) -> str:
    """Spell out digits in English (currency, ordinals, percentages, decimals, thousands, years)."""
    text = _CURRENCY_RE.sub(_currency, text)
    text = _PERCENT_RE.sub(lambda m: m.group(1) + " percent", text)
    text = _THOUSANDS_RE.sub(lambda m: number_to_words(int(m.group(0).replace(",", ""))), text)
    text = _ORDINAL_RE.sub(lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _DECIMAL_RE.sub(_decimal, text)
    return _NUMBER_RE.sub(_integer, text)
