"""Reading real text without a model: normalization, sentence/clause/word splitting, pauses, bad inputs."""

from __future__ import annotations

import pytest

from tortoise_lite.reading.text import (
    DEFAULT_PAUSES,
    ReadingTextError,
    normalize_paragraph,
    plan_reading,
    read_text_file,
)
from tortoise_lite.text.tokenizers import CharTokenizer, NoteTokenizer


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("Dr. Smith paid $3.50.", "Doctor Smith paid three dollars fifty cents."),
        ("It cost $1.5 million.", "It cost one point five million dollars."),
        ("On 2021-03-15 we met.", "On March fifteenth, twenty twenty one we met."),
        (
            "Due 3/15/2021 or 25/12/1999.",
            "Due March fifteenth, twenty twenty one or December twenty fifth, nineteen ninety nine.",
        ),
        ("Born March 3rd, 1984.", "Born March third, nineteen eighty four."),
        ("Meet at 10:30 pm or 7:05.", "Meet at ten thirty p m or seven oh five."),
        ("The 1990s and the '60s.", "The nineteen nineties and the sixties."),
        ("Pages 3-5, 7% up & 2nd place.", "Pages three to five, seven percent up and second place."),
        (
            "Use salt, e.g. sea salt, etc. Then stir.",
            "Use salt, for example, sea salt, et cetera. Then stir.",
        ),
        ("Chapter IV", "Chapter four"),
        ("Mail me@ex.com now.", "Mail me at ex dot com now."),
        (
            "Run 5 km in 1/2 an hour, -3 degrees.",
            "Run five kilometers in one half an hour, minus three degrees.",
        ),
        ("It is **very** [really] good.", "It is very (really) good."),
        ("\u201cHi\u201d \u2014 she said\u2026", '"Hi" - she said...'),
    ],
)
def test_normalization_says_numbers_dates_currency_abbreviations_symbols(raw, said):
    assert normalize_paragraph(raw) == said


def test_sentences_in_order_nothing_dropped_and_pauses_follow_punctuation():
    text = "One cat sat. Did it? Yes! Well; maybe: so...\n\nA new paragraph, here. The end."
    plan = plan_reading(text)
    assert plan.texts == ["One cat sat.", "Did it?", "Yes!", "Well; maybe: so...", "A new paragraph, here.",
                          "The end."]  # fmt: skip
    assert " ".join(plan.texts) == plan.normalized
    pauses = [s.pause for s in plan.segments]
    p = DEFAULT_PAUSES
    assert pauses == [p["sentence"], p["question"], p["exclamation"], p["paragraph"], p["sentence"], 0.0]
    assert [s.paragraph for s in plan.segments] == [0, 0, 0, 0, 1, 1]
    assert [s.index for s in plan.segments] == list(range(6))
    custom = plan_reading(text, pauses={"question": 1.25, "paragraph": 0.1})
    assert custom.segments[1].pause == 1.25 and custom.segments[3].pause == DEFAULT_PAUSES["ellipsis"]
    with pytest.raises(ReadingTextError, match="pauses: unknown key"):
        plan_reading(text, pauses={"full_stop": 1.0})


def test_initials_and_lowercase_continuations_do_not_end_sentences():
    plan = plan_reading("J. R. R. Tolkien wrote it. Wait... what? Mr. Brown left.")
    assert plan.texts == ["J. R. R. Tolkien wrote it.", "Wait... what?", "Mister Brown left."]


def test_long_sentences_split_at_clauses_then_words():
    clauses = "The farmer walks to the river, the teacher paints a window; the robot hears the storm, and the ship moves."
    plan = plan_reading(clauses, max_chars=40)
    assert all(len(t) <= 40 for t in plan.texts) and " ".join(plan.texts) == plan.normalized
    assert [s.cut for s in plan.segments][-1] == "sentence"
    assert plan.texts[0].endswith(",") and plan.segments[0].pause == DEFAULT_PAUSES["comma"]
    assert any(t.endswith(";") for t in plan.texts)


def test_5000_characters_without_punctuation_are_split_not_dropped():
    words = " ".join(["green", "bird", "follows", "that", "ship"] * 200)  # ~5,000 characters, no punctuation
    assert len(words) > 4900
    plan = plan_reading(words, max_chars=100)
    assert len(plan.segments) >= 50 and all(len(t) <= 100 for t in plan.texts)
    assert min(len(t) for t in plan.texts) > 60  # balanced pieces, no stub at the end
    assert " ".join(plan.texts) == plan.normalized == words
    assert {s.cut for s in plan.segments[:-1]} == {"word"}
    one_word = plan_reading("a" * 5000, max_chars=100)
    assert len(one_word.segments) == 50 and "".join(one_word.texts) == "a" * 5000
    assert one_word.warnings and "cut into pieces" in one_word.warnings[0]


def test_ten_thousand_characters_plan_quickly():
    import time

    para = "Every green bird follows that ship again, slowly. Is it 10:30 yet? Dr. Brown paid $4.25! "
    text = "\n\n".join([para * 8] * 15)
    assert len(text) > 10_000
    t0 = time.perf_counter()
    plan = plan_reading(text)
    assert time.perf_counter() - t0 < 5.0
    assert " ".join(plan.texts) == plan.normalized and len(plan.segments) >= 15 * 8 * 3
    assert sum(s.ends_paragraph for s in plan.segments) == 15


@pytest.mark.parametrize("empty", ["", "   ", "\n\n \n"])
def test_empty_text_is_an_error(empty):
    with pytest.raises(ReadingTextError, match="nothing to read: the text is empty"):
        plan_reading(empty)


@pytest.mark.parametrize("symbols", ["*** ***", "!!! ???", "..."])
def test_only_symbols_is_an_error(symbols):
    with pytest.raises(ReadingTextError, match="no words, only symbols"):
        plan_reading(symbols)


def test_wordless_pieces_join_their_neighbour():
    plan = plan_reading("Stop! !!! Go on. (...) Fine.")
    assert plan.texts == ["Stop!!!!", "Go on. (...)", "Fine."]


def test_unknown_symbols_reported_by_segment_and_position_or_dropped():
    text = "A fine day. The key is ^ here and \u2603 there."
    with pytest.raises(ReadingTextError) as e:
        plan_reading(text)
    msg = str(e.value)
    assert "segment 1 (paragraph 0), character 11: '^' (U+005E)" in msg
    assert "character 22: '\u2603' (U+2603)" in msg and "unknown=drop" in msg
    plan = plan_reading(text, unknown="drop")
    assert plan.texts == ["A fine day.", "The key is here and there."]
    assert len(plan.warnings) == 2 and plan.warnings[0].startswith("dropped segment 1")


def test_tokenizer_unknowns_name_segment_and_word():
    tok = CharTokenizer()
    with pytest.raises(
        ReadingTextError, match=r"segment 1 \(paragraph 0\), character 6: 'Tokyo\\u4e2d'|segment 1"
    ):
        plan_reading("Fine. Go to Tokyo\u4e2d now.", tokenizer=tok)
    assert plan_reading("Fine. Go to Tokyo now.", tokenizer=tok).texts == ["Fine.", "Go to Tokyo now."]
    with pytest.raises(ReadingTextError, match="tones model"):
        plan_reading("C4 E4", tokenizer=NoteTokenizer())


def test_text_files_utf8_other_encodings_and_binary(tmp_path):
    good = tmp_path / "good.txt"
    good.write_bytes("\ufeffCaf\u00e9 time.\n".encode())
    assert read_text_file(good) == "Caf\u00e9 time.\n"
    latin = tmp_path / "latin.txt"
    latin.write_bytes("First line.\nCaf\u00e9 au lait.\n".encode("latin-1"))
    with pytest.raises(
        ReadingTextError, match=r"latin.txt is not valid utf-8: byte 0xe9 at line 2, byte 3.*encoding=latin-1"
    ):
        read_text_file(latin)
    assert read_text_file(latin, encoding="latin-1").startswith("First line.\nCaf\u00e9")
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"abc\x00def")
    with pytest.raises(ReadingTextError, match="NUL bytes"):
        read_text_file(binary)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_text_file(tmp_path / "missing.txt")
