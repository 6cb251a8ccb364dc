"""``synthetic_voices``: many eSpeak NG voices with exact durations, some held out for zero-shot cloning.

Built like ``synthetic_speech`` (same prompts, same phoneme alignment, same ``durations/<id>.npy``) but
over ~90 of eSpeak's voice variants (``en-us+<variant>``, ``voices/!v`` in its data folder):

* every voice gets ONE base pitch and rate, drawn from ``pitch_range``/``rate_range`` by a generator
  seeded with ``(seed, voice name)`` (so a voice keeps them when the voice list changes); each utterance
  jitters them by uniform integers in ``±pitch_jitter``/``±rate_jitter``. One pitch per voice makes
  the voices distinct (the speech recipe trained better with it than with a random pitch per utterance).
* training items (``manifest.jsonl``): ``n_utterances`` spread round-robin over a seeded shuffle of the
  training voices, so each voice has ``n_utterances / len(voices)`` items (±1); ``Item.speaker`` is the
  full voice name (``en-us+f3``).
* held-out voices (``heldout_voices.jsonl``, never in ``manifest.jsonl``): ``utterances_per_heldout_voice``
  items per voice of ``heldout_voices`` (``HELDOUT_VOICES``), on prompts absent from the training set:
  reference clips and ground truth for zero-shot speaker similarity.
* ``heldout.txt``: ``n_heldout`` evaluation prompts used by no item; ``settings.json`` has a
  ``voice_table`` ``{voice: {"pitch", "rate", "heldout"}}``.

The utterances are rendered in a fresh interpreter with eSpeak's noise generators seeded, so the corpus
is the same bytes whatever the calling process synthesized before (see "rendering" below).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tortoise_lite.audio import MelSpec, save_wav
from tortoise_lite.audio.io import resample
from tortoise_lite.data.cache import atomic_save_npy, atomic_write_json, atomic_write_text
from tortoise_lite.data.corpora.common import Corpus, generate_once
from tortoise_lite.data.corpora.synthetic_speech import (
    AlignmentError,
    align_events,
    make_prompt,
    samples_to_frames,
)
from tortoise_lite.data.manifest import Item, write_jsonl
from tortoise_lite.text import espeak
from tortoise_lite.text.tokenizers import PhonemeTokenizer

GENERATOR_VERSION = 1

# Voice selection. ``screen_variant`` (below) was run ONCE over all 104 variants of espeakng-loader's
# data (eSpeak NG 1.52) and its verdicts are frozen here, so the corpus does not depend on re-measuring.
# A variant passes when, on 16 fixed prompts (``make_prompt(Random(1234))``, rate 175, pitch 50), it
# (1) synthesizes non-empty audio every time, (2) ``align_events`` succeeds on at least 14 of 16 (the
# variant keeps the phonemes and their events), (3) is not near-silent (RMS >= -40 dBFS) and (4) is
# voiced: the 90th percentile over active frames of the cepstral peak prominence at 8 kHz is at least
# a third of the plain ``en-us`` voice's. Result: every variant aligned 16/16 and is loud enough; only
# the whispers fail (4): ``whisper``, ``whisperf`` and ``caleb`` (klatt with voicing 0) at 0.25-0.27 of
# ``en-us``, apart from the next lowest (echoey ``RicishayMax2/3`` at 0.41, with clear harmonics; then
# ``ian`` at 0.50). Autocorrelation and pYIN voicing were tried first and rejected: the flutter voices
# (``croak``, ``grandpa``) read as unvoiced to them although their spectrograms show harmonics.
# The 101 that pass minus HELDOUT_VOICES make TRAINING_VOICES (91).
#
# HELDOUT_VOICES: 10 passing variants spread over female (f2, Annie, linda, grandma), male (m1, norbert,
# boris, Marco), klatt (klatt3) and robotic (robosoft6) voices, each chosen so that its nearest
# training voice (RMS distance between mean log-mels of 6 prompts at equal pitch/rate) is not a
# near-twin (>= 0.33, against a median pair distance of 1.06; twins such as m4/m5 or klatt/klatt2 sit
# at 0.04-0.20), so the zero-shot test meets voices the model has not heard in a thin disguise.
HELDOUT_VOICES: tuple[str, ...] = tuple(
    f"en-us+{v}"
    for v in ("f2", "m1", "klatt3", "Annie", "linda", "grandma", "norbert", "boris", "Marco", "robosoft6")
)
TRAINING_VOICES: tuple[str, ...] = tuple(
    f"en-us+{v}"
    for v in (
        "Alex", "Alicia", "Andrea", "Andy", "AnxiousAndy", "Demonic", "Denis", "Diogo", "Gene", "Gene2",
        "Henrique", "Hugo", "Jacky", "Lee", "Mario", "Michael", "Mike", "Mr serious", "Nguyen", "Reed",
        "RicishayMax", "RicishayMax2", "RicishayMax3", "Storm", "Tweaky", "UniRobot", "adam", "anika",
        "anikaRobot", "announcer", "antonio", "aunty", "belinda", "benjamin", "croak", "david", "ed",
        "edward", "edward2", "f1", "f3", "f4", "f5", "fast", "grandpa", "gustave", "ian", "iven", "iven2",
        "iven3", "iven4", "john", "kaukovalta", "klatt", "klatt2", "klatt4", "klatt5", "klatt6", "m2",
        "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max", "michel", "miguel", "mike2", "pablo",
        "paul", "pedro", "quincy", "rob", "robert", "robosoft", "robosoft2", "robosoft3", "robosoft4",
        "robosoft5", "robosoft7", "robosoft8", "sandro", "shelby", "steph", "steph2", "steph3", "travis",
        "victor", "zac",
    )
)  # fmt: skip
SCREEN_PROMPT_SEED = 1234


def variants() -> list[str]:
    """Names of eSpeak NG's voice variants (files in ``voices/!v``), e.g. ``f3``, ``Annie``, ``klatt2``."""
    return sorted(os.listdir(os.path.join(espeak.data_path(), "voices", "!v")))


def check_voice(voice: str) -> None:
    """Raise ``ValueError`` naming ``voice`` unless eSpeak has its language and (``+...``) its variant.

    eSpeak silently falls back to the default variant for an unknown one, hence the explicit check.
    """
    lang, _, variant = voice.partition("+")
    if not espeak.voice_exists(lang):
        raise ValueError(f"eSpeak NG has no voice {voice!r} (language {lang!r} unknown)")
    if variant and variant not in variants():
        raise ValueError(
            f"eSpeak NG has no voice variant {variant!r} (in {voice!r}); variants: {', '.join(variants())}"
        )


def voice_base(
    voice: str, seed: int, pitch_range: Sequence[int], rate_range: Sequence[int]
) -> tuple[int, int]:
    """The voice's base (pitch, rate): uniform ints in the ranges, from a generator seeded by (seed, voice)."""
    rng = random.Random(f"{seed}:{voice}")
    return rng.randint(*pitch_range), rng.randint(*rate_range)


def screen_variant(variant: str, phoneme_voice: str = "en-us", n_prompts: int = 16) -> dict:
    """Measure one variant as the comment above ``HELDOUT_VOICES`` describes (without the relative cut).

    Returns ``{"synthesized", "aligned", "rms_dbfs", "cpp"}`` (counts out of ``n_prompts``; ``cpp`` the
    90th-percentile cepstral peak prominence of active 50 ms frames at 8 kHz, higher = more voiced).
    """
    tok = PhonemeTokenizer(voice=phoneme_voice)
    rng = random.Random(SCREEN_PROMPT_SEED)
    name = f"{phoneme_voice}+{variant}" if variant else phoneme_voice
    synthesized = aligned = 0
    rms, cpp = [], []
    for _ in range(n_prompts):
        text = make_prompt(rng)
        syn = espeak.synthesize(tok.normalize(text), name, 175, 50)
        if len(syn.audio) == 0:
            continue
        synthesized += 1
        try:
            align_events(tok.symbols_of(text), syn.events, len(syn.audio))
            aligned += 1
        except AlignmentError:
            pass
        x = syn.float_audio
        rms.append(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9))
        cpp.append(_cepstral_peak_prominence(x, syn.sample_rate))
    return {
        "synthesized": synthesized,
        "aligned": aligned,
        "rms_dbfs": float(np.mean(rms)) if rms else -np.inf,
        "cpp": float(np.mean(cpp)) if cpp else 0.0,
    }


def screen_passes(stats: dict, reference: dict, n_prompts: int = 16) -> bool:
    """The frozen rule: all synthesized, >= 7/8 aligned, RMS >= -40 dBFS, cpp >= reference cpp / 3."""
    return (
        stats["synthesized"] == n_prompts
        and stats["aligned"] >= 7 * n_prompts / 8
        and stats["rms_dbfs"] >= -40.0
        and stats["cpp"] >= reference["cpp"] / 3
    )


@functools.cache
def _rand_seeders() -> tuple:
    """``espeak_ng_SetRandSeed`` (None in builds without it) and libc's ``srand``."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())  # the handle espeak.py loaded (dlopen shares it)
    own = getattr(lib, "espeak_ng_SetRandSeed", None)
    if own is not None:
        own.argtypes = [ctypes.c_long]
    libc_srand = ctypes.CDLL(None).srand
    libc_srand.argtypes = [ctypes.c_uint]
    return own, libc_srand


def _seed_espeak(value: int) -> None:
    """Seed eSpeak's noise generators (breath noise draws from libc ``rand()`` and eSpeak's own generator,
    which the library seeds from the clock) before a synthesis."""
    espeak.native_sample_rate()  # initialize (which seeds from the clock) before seeding
    own, libc_srand = _rand_seeders()
    if own is not None:
        own(value)
    libc_srand(value)


def _cepstral_peak_prominence(x: np.ndarray, sr_in: int, sr: int = 8000) -> float:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr, sr_in)
    x = resample_poly(x.astype(np.float64), sr // g, sr_in // g)  # 0-4 kHz: where the harmonics are
    frame, hop, n_fft = int(0.05 * sr), int(0.01 * sr), 2048
    if len(x) < frame:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop] * np.hanning(frame)
    energy = np.sqrt((frames**2).mean(1))
    frames = frames[energy > 0.1 * energy.max()]
    log_spec = 20 * np.log10(np.abs(np.fft.rfft(frames, n_fft)) + 1e-9)
    ceps = np.fft.irfft(log_spec, n_fft)[:, : n_fft // 2]
    q = np.arange(n_fft // 2) / sr
    band = (q >= 1 / 500) & (q <= 1 / 60)  # pitch periods of 60-500 Hz
    c, qb = ceps[:, band], q[band]
    design = np.stack([qb, np.ones_like(qb)], 1)
    trend = design @ np.linalg.lstsq(design, c.T, rcond=None)[0]  # (n_quefrency, n_frames)
    peak = c.argmax(1)
    rows = np.arange(len(c))
    return float(np.percentile(c[rows, peak] - trend[peak, rows], 90))


def synthetic_voices(
    mel: MelSpec | None = None,
    n_utterances: int = 2400,
    seed: int = 0,
    voices: str | Sequence[str] = "auto",
    heldout_voices: Sequence[str] = HELDOUT_VOICES,
    utterances_per_heldout_voice: int = 12,
    pitch_range: Sequence[int] = (25, 75),
    rate_range: Sequence[int] = (140, 210),
    pitch_jitter: int = 3,
    rate_jitter: int = 8,
    min_seconds: float = 1.0,
    max_seconds: float = 3.0,
    n_heldout: int = 100,
    phoneme_voice: str = "en-us",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Corpus:
    """Generate (or reuse) the corpus; see the module doc. ``voices="auto"``: ``TRAINING_VOICES`` minus
    ``heldout_voices``. Raises ``ValueError`` for unknown voices or a training voice that is held out."""
    mel = mel or MelSpec()
    heldout_voices = list(heldout_voices)
    if isinstance(voices, str):
        if voices != "auto":
            raise ValueError(f"voices must be 'auto' or a list of eSpeak voices, got {voices!r}")
        voices = [v for v in TRAINING_VOICES if v not in heldout_voices]
    voices = list(voices)
    if not voices:
        raise ValueError("synthetic_voices needs at least one training voice")
    for group, names in (("voices", voices), ("heldout_voices", heldout_voices)):
        if len(set(names)) != len(names):
            raise ValueError(
                f"{group} lists a voice twice: {sorted({v for v in names if names.count(v) > 1})}"
            )
        for v in names:
            check_voice(v)
    leaked = [v for v in voices if v in heldout_voices]
    if leaked:
        raise ValueError(
            f"training voices {leaked} are held out for zero-shot tests (heldout_voices); "
            "remove them from voices or from heldout_voices"
        )
    for what, (lo, hi), jitter, allowed in (
        ("pitch_range", pitch_range, pitch_jitter, espeak.PITCH_RANGE),
        ("rate_range", rate_range, rate_jitter, espeak.RATE_RANGE),
    ):
        if not allowed[0] <= lo - jitter <= hi + jitter <= allowed[1]:
            raise ValueError(f"{what} ({lo}, {hi}) ± {jitter} must lie within eSpeak's {allowed}")

    voice_table = {
        v: dict(
            zip(("pitch", "rate"), voice_base(v, seed, pitch_range, rate_range)), heldout=v in heldout_voices
        )
        for v in voices + heldout_voices
    }
    settings = {
        "version": GENERATOR_VERSION,
        "mel": mel.to_dict(),
        "n_utterances": n_utterances,
        "seed": seed,
        "voices": voices,
        "heldout_voices": heldout_voices,
        "utterances_per_heldout_voice": utterances_per_heldout_voice,
        "pitch_range": list(pitch_range),
        "rate_range": list(rate_range),
        "pitch_jitter": pitch_jitter,
        "rate_jitter": rate_jitter,
        "min_seconds": min_seconds,
        "max_seconds": max_seconds,
        "n_heldout": n_heldout,
        "phoneme_voice": phoneme_voice,
    }

    def build(tmp: Path) -> None:
        order = list(voices)
        random.Random(f"order:{seed}").shuffle(order)  # round-robin: every voice gets n / len(voices) ± 1
        slots = [(f"sv{k:05d}", order[k % len(order)]) for k in range(n_utterances)]
        slots += [
            (f"hv{i * utterances_per_heldout_voice + j:05d}", v)
            for i, v in enumerate(heldout_voices)
            for j in range(utterances_per_heldout_voice)
        ]
        job = {**settings, "voice_table": voice_table, "slots": slots}
        rendered, attempts = _render_in_fresh_process(tmp, job, progress)
        items = [r for r in rendered if r.id.startswith("sv")]
        held_items = [r for r in rendered if r.id.startswith("hv")]
        used = {it.text for it in rendered}
        prompts: list[str] = []
        prng = random.Random(f"heldout-{seed}")
        while len(prompts) < n_heldout:
            p = make_prompt(prng)
            if p not in used and p not in prompts:
                prompts.append(p)
        write_jsonl(tmp / "manifest.jsonl", items)
        write_jsonl(tmp / "heldout_voices.jsonl", held_items)
        atomic_write_text(tmp / "heldout.txt", "\n".join(prompts) + "\n")
        atomic_write_json(
            tmp / "settings.json",
            {**settings, "voice_table": voice_table, "attempts": attempts, "sample_rate": mel.sample_rate},
        )

    return generate_once("synthetic_voices", settings, cache_dir, build)


# ---- rendering -------------------------------------------------------------------------------------
# libespeak-ng carries state from one synthesis to the next (the pitch-flutter phase, the gain control,
# resonator memories: function statics that no API resets), so the same call gives audio a few
# milliseconds longer or shorter depending on what the process synthesized before, and a length near
# min_seconds/max_seconds would then flip an item in or out. The utterances are therefore rendered in a
# fresh interpreter (a plain subprocess: no multiprocessing, so no re-import of the caller's script),
# with eSpeak's noise generators seeded per attempt: the corpus is the same bytes whatever ran before.


def _render_in_fresh_process(tmp: Path, job: dict, progress: bool) -> tuple[list[Item], int]:
    """Run ``_render_main`` on ``job`` in a new interpreter; returns the items (paths relative) and attempts."""
    import subprocess
    import sys

    from tortoise_lite.data.preparation import _progress

    job_path, result_path, log_path = tmp / ".job.json", tmp / ".result.json", tmp / ".render.log"
    atomic_write_json(job_path, job)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[3])  # the folder holding tortoise_lite/
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    code = "from tortoise_lite.data.corpora.synthetic_voices import _render_main; _render_main()"
    with open(log_path, "w") as log, _progress(progress) as bar:
        task = bar.add_task("synthetic_voices", total=len(job["slots"]))
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(tmp)], stdout=subprocess.PIPE, stderr=log, text=True, env=env
        )
        try:
            for line in proc.stdout:
                if line.strip() == "+":
                    bar.advance(task)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if rc != 0:
        lines = log_path.read_text(errors="replace").strip().splitlines()
        raise RuntimeError(f"synthetic_voices: rendering failed (exit {rc}): {lines[-1] if lines else ''}")
    result = json.loads(result_path.read_text())
    for path in (job_path, result_path, log_path):
        path.unlink()
    return [Item(**d) for d in result["items"]], int(result["attempts"])


def _render_main() -> None:
    """Subprocess entry: render ``<tmp>/.job.json`` into ``<tmp>``, one ``+`` line per utterance."""
    import sys

    tmp = Path(sys.argv[1])
    job = json.loads((tmp / ".job.json").read_text())
    items, attempts = [], 0
    used: set[str] = set()
    renderer = _Renderer(job, tmp)
    for uid, voice in job["slots"]:
        item, n = renderer.speak(uid, voice, used)
        items.append(item.to_dict())
        used.add(item.text)
        attempts += n
        print("+", flush=True)
    atomic_write_json(tmp / ".result.json", {"items": items, "attempts": attempts})


class _Renderer:
    """Speaks one slot at a time into ``out/wavs`` and ``out/durations`` (see ``speak``)."""

    def __init__(self, job: dict, out: Path) -> None:
        self.job, self.out = job, out
        self.mel = MelSpec.from_dict(job["mel"])
        self.tokenizer = PhonemeTokenizer(voice=job["phoneme_voice"])
        (out / "wavs").mkdir(exist_ok=True)
        (out / "durations").mkdir(exist_ok=True)

    def speak(self, uid: str, voice: str, used: set[str], max_attempts: int = 200) -> tuple[Item, int]:
        """Draw prompts for ``voice`` until one is new, within the length range and aligned.

        Each slot draws from its own generator (seeded by the corpus seed and the item id). Returns the
        item (paths relative to the corpus) and the number of prompts drawn."""
        job, mel, tok = self.job, self.mel, self.tokenizer
        base = job["voice_table"][voice]
        rng = random.Random(f"{job['seed']}:{uid}")
        for attempt in range(1, max_attempts + 1):
            text = make_prompt(rng)
            pitch = base["pitch"] + rng.randint(-job["pitch_jitter"], job["pitch_jitter"])
            rate = base["rate"] + rng.randint(-job["rate_jitter"], job["rate_jitter"])
            noise_seed = rng.getrandbits(31)
            if text in used:
                continue
            _seed_espeak(noise_seed)
            syn = espeak.synthesize(tok.normalize(text), voice, rate, pitch)
            wav = resample(syn.float_audio, syn.sample_rate, mel.sample_rate)
            seconds = len(wav) / mel.sample_rate
            if not job["min_seconds"] <= seconds <= job["max_seconds"]:
                continue
            try:
                samples = align_events(tok.symbols_of(text), syn.events, len(syn.audio))
            except AlignmentError:
                continue
            frames = samples_to_frames(
                samples, mel.sample_rate / syn.sample_rate, mel.hop, mel.num_frames(len(wav))
            )
            save_wav(self.out / "wavs" / f"{uid}.wav", wav, mel.sample_rate)
            atomic_save_npy(self.out / "durations" / f"{uid}.npy", frames)
            item = Item(uid, f"wavs/{uid}.wav", text, voice, f"durations/{uid}.npy", round(seconds, 4))
            return item, attempt
        raise RuntimeError(
            f"{voice}: no usable utterance in {max_attempts} prompts within [{job['min_seconds']}, "
            f"{job['max_seconds']}] s (pitch {base['pitch']}, rate {base['rate']}); widen the length range "
            "or change rate_range"
        )
