"""Long-form reading beside the API: text normalization and splitting (:mod:`.text`), candidate scorers
(:mod:`.scoring`), batched generation, joining, files, regeneration and streaming (:mod:`.reader`)."""

from tortoise_lite.reading.reader import (
    Reader,
    ReadingResult,
    SegmentAudio,
    StreamChunk,
    load_preset,
    preset_names,
    read,
    segment_seed,
    stream,
)
from tortoise_lite.reading.scoring import RecognizerScorer, Scorer, best_candidate, build_scorer
from tortoise_lite.reading.text import (
    DEFAULT_PAUSES,
    ReadingPlan,
    ReadingTextError,
    Segment,
    normalize_paragraph,
    plan_reading,
    read_text_file,
)

__all__ = [
    "DEFAULT_PAUSES",
    "Reader",
    "ReadingPlan",
    "ReadingResult",
    "ReadingTextError",
    "RecognizerScorer",
    "Scorer",
    "Segment",
    "SegmentAudio",
    "StreamChunk",
    "best_candidate",
    "build_scorer",
    "load_preset",
    "normalize_paragraph",
    "plan_reading",
    "preset_names",
    "read",
    "read_text_file",
    "segment_seed",
    "stream",
]
