import pytest

from tortoise_lite.text.normalize import expand_numbers_en, normalize_unicode, number_to_words
from tortoise_lite.text.tokenizers import (
    CharTokenizer,
    NoteTokenizer,
    PhonemeTokenizer,
    UnknownSymbolError,
    note_to_midi,
    tokenizer_from_dict,
)


def test_numbers_expand_to_english_words():
    assert number_to_words(1234) == "one thousand two hundred thirty four"
    assert expand_numbers_en("$3.50") == "three dollars fifty cents"
    assert expand_numbers_en("the 21st of 1984") == "the twenty first of nineteen eighty four"
    assert expand_numbers_en("7% of 2.5") == "seven percent of two point five"
    assert expand_numbers_en("1,000,000") == "one million"


def test_unicode_normalization():
    assert normalize_unicode("\u201cCafé\u201d \u2014  ok\u2026", fold_accents=True) == '"Cafe" - ok...'


def test_char_tokenizer_normalizes_and_round_trips():
    tok = CharTokenizer()
    ids = tok.encode("Hello, World! It's 42.")
    assert 0 not in ids and tok.pad_id == 0 and tok.symbols[0] == "<pad>"
    assert tok.decode(ids) == "hello, world! it's forty two."
    assert len(tok) == len(tok.symbols)


def test_unknown_symbol_is_an_error_naming_it():
    tok = CharTokenizer()
    with pytest.raises(UnknownSymbolError, match=r"'☺' \(U\+263A\).*unknown_map"):
        tok.encode("smile ☺")
    assert tok.unknown_symbols("a ☺ b ✓") == ["☺", "✓"]


def test_unknown_map_is_explicit():
    tok = CharTokenizer(unknown_map={"☺": "", "ß": "ss"})
    assert tok.decode(tok.encode("straße☺")) == "strasse"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        CharTokenizer(unknown_map={"x": "☺"})


def test_vocabulary_round_trips_through_dict():
    tok = CharTokenizer(extra_symbols=["é"], unknown_map={"☺": ""}, fold_accents=False)
    tok2 = tokenizer_from_dict(tok.to_dict())
    assert tok2.symbols == tok.symbols
    assert tok2.encode("café ☺") == tok.encode("café ☺")
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        tokenizer_from_dict({"type": "bpe"})


def test_phoneme_tokenizer_covers_every_clause():
    tok = PhonemeTokenizer()
    ipa = tok.phonemize("Hello, world! How are you? Fine.")
    # every clause is there, with its punctuation
    assert ipa.count(",") == 1 and ipa.count("!") == 1 and ipa.count("?") == 1 and ipa.endswith(".")
    assert "f" in ipa.split("?")[-1]  # the last clause ("fine") was not lost
    assert tok.decode(tok.encode("Hello, world! How are you? Fine.")) == ipa
    tok2 = tokenizer_from_dict(tok.to_dict())
    assert tok2.voice == "en-us" and tok2.symbols == tok.symbols


def test_phoneme_tokenizer_expands_numbers_like_chars():
    tok = PhonemeTokenizer()
    assert tok.phonemize("42") == tok.phonemize("forty two")


def test_note_tokenizer():
    tok = NoteTokenizer()
    ids = tok.encode("C4 Eb4 g4 R")
    assert tok.decode(ids) == "C4 D#4 G4 R"
    assert note_to_midi("A4") == 69 and note_to_midi("C4") == 60 and note_to_midi("Cb4") == 59
    with pytest.raises(UnknownSymbolError, match="'H4'"):
        tok.encode("C4 H4")
    assert tokenizer_from_dict(tok.to_dict()).encode("C4 E4") == tok.encode("C4 E4")
