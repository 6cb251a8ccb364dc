"""A web page for a trained model: ``python -m tortoise_lite.serve ckpt=PATH [key=value ...]``.

Text in, audio out, and the diffusion process made visible: the x0 prediction at every sampling step as a
strip of mel images, and how far each frequency band still is from its final value after every step (the
spectral-band measure of :mod:`tortoise_lite.evaluation.spectral`). A compare tab runs the same text and seed
at two step counts or with two samplers side by side.

One model in memory serves everyone: Gradio's queue (bounded: ``queue_size``) hands requests to
``concurrency`` workers (default 1, so requests run one after the other on ``threads`` CPU threads). A bad
request (empty text, unknown symbols, a text over ``max_chars``, a bad reference clip, an out-of-range
setting) shows an error naming the field on the page; the server keeps serving. It listens on 127.0.0.1
unless ``host=0.0.0.0`` is given.

Gradio is an optional extra (``pip install -e ".[web]"``) and this is the only module that imports it. The
request logic (:class:`ServeEngine`) is plain Python and works without it.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tortoise_lite.evaluation.cli import (
    UsageError,
    build_vocoder_spec,
    compose,
    require,
    run_cli,
    setup_torch,
)

USAGE = """usage: python -m tortoise_lite.serve ckpt=PATH [key=value ...]

  ckpt=PATH            text-to-mel checkpoint from `python -m tortoise_lite.train`
  vocoder_ckpt=PATH    a trained vocoder (default: Griffin-Lim); or vocoder=checkpoint vocoder.path=PATH
  voices_dir=DIR       voice models: <name>/ folders of reference clips and <name>.pt latents
  host=127.0.0.1       host=0.0.0.0 makes the page reachable from other machines (ask for it)
  port=7860 threads=N queue_size=32 concurrency=1 max_chars=500 max_steps=200
  --cfg                print the composed config; all keys: conf/serve.yaml
  needs the web extra: pip install -e ".[web]\""""

ANY_SPEAKER = "(any speaker)"
AVERAGE_VOICE = "(average voice)"
NO_PRESET = "(none)"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RequestError(ValueError):
    """A request the page cannot serve; ``field`` names the input to change, the message says how."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


# ---------------------------------------------------------------------------------------------------
# hooks for features that other parts of the toolkit add (presets, reference voices)
# ---------------------------------------------------------------------------------------------------
def list_presets() -> list[str]:
    """Names of ``conf/preset/*.yaml`` (an empty list while the toolkit has no presets)."""
    from tortoise_lite.paths import config_dir

    try:
        folder = config_dir() / "preset"
    except FileNotFoundError:
        return []
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def preset_settings(name: str) -> dict[str, Any]:
    """The page settings a preset sets: any of ``sampler`` (name), ``steps``, ``guidance``, ``temperature``,
    ``length_scale`` found in ``conf/preset/<name>.yaml`` (top level or under a ``preset:`` key)."""
    from tortoise_lite.paths import config_dir

    path = config_dir() / "preset" / f"{name}.yaml"
    if not path.is_file():
        raise RequestError(
            "preset", f"no preset {name!r}; choose one of: {', '.join(list_presets()) or 'none'}"
        )
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if isinstance(node, dict) and isinstance(node.get("preset"), dict):
        node = node["preset"]
    out: dict[str, Any] = {}
    sampler = node.get("sampler") if isinstance(node, dict) else None
    if isinstance(sampler, dict):
        if sampler.get("name"):
            out["sampler"] = str(sampler["name"])
        if sampler.get("steps") is not None:
            out["steps"] = int(sampler["steps"])
    elif isinstance(sampler, str):
        out["sampler"] = sampler
    for key, cast in (("steps", int), ("guidance", float), ("temperature", float), ("length_scale", float)):
        if isinstance(node, dict) and isinstance(node.get(key), (int, float)):
            out[key] = cast(node[key])
    return out


def voice_model(tts: Any) -> bool:
    """Whether the loaded model conditions on reference clips (a voice model, ``voice_dim > 0``)."""
    return tts.voice_dim > 0


def check_reference_clip(path: str | os.PathLike, min_seconds: float = 0.5) -> Path:
    """An uploaded reference clip that can be read, is long enough and is not silent (else RequestError)."""
    import numpy as np
    import soundfile as sf

    p = Path(path)
    name = p.name
    if not p.is_file() or p.stat().st_size == 0:
        raise RequestError("reference clip", f"{name} is empty; upload a wav/flac/ogg recording of the voice")
    try:
        wav, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError for anything unreadable
        raise RequestError(
            "reference clip",
            f"{name} is not a readable audio file ({' '.join(str(e).split())[:120]}); "
            "upload a wav, flac or ogg file",
        ) from e
    seconds = wav.shape[0] / max(sr, 1)
    if seconds < min_seconds:
        raise RequestError(
            "reference clip", f"{name} is {seconds:.2f} s long; upload at least {min_seconds:g} s of speech"
        )
    if not np.isfinite(wav).all() or float(np.abs(wav).max()) < 1e-4:
        raise RequestError(
            "reference clip", f"{name} is silent; upload a recording in which the voice speaks"
        )
    return p


# ---------------------------------------------------------------------------------------------------
# the request logic (no web framework)
# ---------------------------------------------------------------------------------------------------
@dataclass
class Settings:
    """One synthesis request as the page sends it (strings and numbers straight from the widgets)."""

    text: str = ""
    speaker: str | None = None
    sampler: str | None = None
    steps: Any = None
    guidance: Any = 1.0
    seed: Any = 0
    temperature: Any = None
    length_scale: Any = 1.0
    voice: str | None = None
    reference_clip: str | None = None


@dataclass
class Result:
    """What one request produced: files for the page and the numbers behind its summary. The figures
    (``*_png``, settle steps) are filled by :meth:`ServeEngine.render`, after the audio."""

    wav: Path
    frames: int
    samples: int
    sample_rate: int
    sampler: str
    steps: int
    nfe: int
    seed: int | None
    acoustic_seconds: float
    vocoder_seconds: float
    request_to_audio_seconds: float
    mel_png: Path | None = None
    strip_png: Path | None = None
    bands_png: Path | None = None
    figures_seconds: float | None = None
    settle_steps: list[int | None] = field(default_factory=list)
    band_labels: list[str] = field(default_factory=list)
    trajectory: dict[str, Any] | None = field(default=None, repr=False)
    token: int = 0  # which request of this server it was (the page draws figures of the latest one only)

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def rtf(self) -> float:
        return (self.acoustic_seconds + self.vocoder_seconds) / max(self.audio_seconds, 1e-9)

    def summary_markdown(self) -> str:
        seed = "fresh noise" if self.seed is None else str(self.seed)
        rows = [
            "| measure | value |",
            "|:--|:--|",
            f"| audio | {self.audio_seconds:.2f} s, {self.samples} samples at {self.sample_rate} Hz |",
            f"| mel frames | {self.frames} |",
            f"| sampler | {self.sampler}, {self.steps} steps, {self.nfe} NFE, seed {seed} |",
            f"| acoustic model | {self.acoustic_seconds:.2f} s |",
            f"| vocoder | {self.vocoder_seconds:.2f} s |",
            f"| real-time factor | {self.rtf:.3f} |",
            f"| request to audio | {self.request_to_audio_seconds:.2f} s (in the server) |",
        ]
        if self.figures_seconds is None:
            rows.append("| figures | drawing... |")
        else:
            settled = ", ".join(
                f"{lab}: {'step ' + str(s) if s is not None else 'not yet'}"
                for lab, s in zip(self.band_labels, self.settle_steps)
            )
            rows.append(f"| figures | {self.figures_seconds:.2f} s after the audio |")
            rows.append(f"| bands settled (error < 10 % of the first step's) | {settled} |")
        return "\n".join(rows)


def example_text(tts: Any) -> str:
    kind = getattr(tts.tokenizer, "kind", "")
    return "C4 E4 G4 C5" if kind == "notes" else "The red cat sees a ship."


class ServeEngine:
    """One loaded model behind the page: validates a request, synthesizes with the x0 predictions
    recorded, writes the wav and the figures. Thread-safe (one request computes at a time)."""

    def __init__(
        self,
        tts: Any,
        work_dir: str | os.PathLike | None = None,
        threads: int | None = None,
        max_chars: int = 500,
        max_steps: int = 200,
        strip_panels: int = 10,
        n_bands: int = 8,
        voices_dir: str | None = None,
        keep_requests: int = 256,
    ):
        self.tts = tts
        self.threads = int(threads) if threads else None
        self.max_chars = int(max_chars)
        self.max_steps = int(max_steps)
        self.strip_panels = max(2, int(strip_panels))
        self.n_bands = int(n_bands)
        self.voices_dir = voices_dir
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="tortoise_lite_serve_")).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._compute = threading.Lock()
        self._files = threading.Lock()
        self._counter = 0
        self._recent: deque[Path] = deque()
        self._keep = max(8, int(keep_requests))
        default = getattr(tts.model, "sampler", None)
        self.default_sampler = str(getattr(default, "name", "dpmpp_2m"))
        self.default_steps = int(getattr(default, "steps", 10) or 10)
        self.default_temperature = float(getattr(tts.model, "temperature", 1.0))

    # -- validation ----------------------------------------------------------------------------------
    def _number(self, field: str, value: Any, lo: float, hi: float, integer: bool = False) -> float | int:
        what = "a whole number" if integer else "a number"
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise RequestError(field, f"{value!r} is not {what}; give {what} from {lo:g} to {hi:g}") from None
        if not math.isfinite(x) or not lo <= x <= hi or (integer and x != int(x)):
            raise RequestError(field, f"{value!r} is out of range; give {what} from {lo:g} to {hi:g}")
        return int(x) if integer else x

    def check(self, s: Settings) -> dict[str, Any]:
        """The ``generate_mels`` keyword arguments for a request, or a RequestError naming the field."""
        from tortoise_lite.diffusion.samplers import SAMPLERS

        text = " ".join(str(s.text or "").split())  # lines of the box read as one utterance
        if not text:
            raise RequestError(
                "text", f"empty; type what the model should say, e.g. {example_text(self.tts)!r}"
            )
        if len(text) > self.max_chars:
            raise RequestError(
                "text",
                f"{len(text)} characters, over this server's limit of {self.max_chars} (max_chars); "
                "shorten it or split it into several requests",
            )
        try:
            self.tts.check_texts([text])
        except ValueError as e:
            raise RequestError("text", str(e)) from None
        sampler = s.sampler or self.default_sampler
        if sampler not in SAMPLERS:
            raise RequestError(
                "sampler", f"unknown sampler {sampler!r}; choose one of: {', '.join(sorted(SAMPLERS))}"
            )
        steps = self.default_steps if s.steps in (None, "") else s.steps
        kw: dict[str, Any] = {
            "texts": [text],
            "sampler": sampler,
            "steps": self._number("steps", steps, 1, self.max_steps, integer=True),
            "guidance": self._number("guidance", 1.0 if s.guidance in (None, "") else s.guidance, 0.0, 20.0),
            "length_scale": self._number(
                "length scale", 1.0 if s.length_scale in (None, "") else s.length_scale, 0.25, 4.0
            ),
            "seed": None
            if s.seed in (None, "")
            else self._number("seed", s.seed, 0, 2**31 - 1, integer=True),
        }
        if s.temperature not in (None, ""):
            kw["temperature"] = self._number("temperature", s.temperature, 0.01, 3.0)
        if s.speaker not in (None, "", ANY_SPEAKER):
            if s.speaker not in self.tts.speakers:
                known = ", ".join(self.tts.speakers) or "none (this model has one voice)"
                raise RequestError("speaker", f"unknown speaker {s.speaker!r}; known speakers: {known}")
            kw["speaker"] = s.speaker
        if s.reference_clip or s.voice not in (None, "", AVERAGE_VOICE):
            kw["voice"] = self.voice_latent(s)
        return kw

    def voice_names(self) -> list[str]:
        """The page's voice list: the trained voices, then the voices in ``voices_dir``."""
        if not voice_model(self.tts):
            return []
        from tortoise_lite.voice import list_voices_dir

        return list(dict.fromkeys([*self.tts.trained_voices, *list_voices_dir(self.voices_dir)]))

    def voice_latent(self, s: Settings) -> Any:
        """The latent of the request's uploaded clip (first) or chosen voice, or a RequestError."""
        from tortoise_lite.voice import VoiceError, resolve_name, resolve_voice

        field = "reference clip" if s.reference_clip else "voice"
        if not s.reference_clip and s.voice not in self.voice_names():
            known = ", ".join(self.voice_names()) or "none"
            raise RequestError(
                "voice",
                f"no voice {s.voice!r} in voices_dir={self.voices_dir} or the trained voices; known: {known}",
            )
        if not voice_model(self.tts):
            raise RequestError(
                field,
                "this checkpoint was trained without reference clips: it takes no voice; leave the reference "
                "clip empty and pick a trained speaker",
            )
        try:
            if s.reference_clip:
                clip = check_reference_clip(s.reference_clip)
                return resolve_voice([clip], self.tts.model, self.tts.info).latent
            return resolve_name(str(s.voice), self.tts.model, self.tts.info, self.voices_dir).latent
        except VoiceError as e:
            raise RequestError(field, str(e)) from None

    # -- synthesis -----------------------------------------------------------------------------------
    def _request_dir(self) -> Path:
        with self._files:
            self._counter += 1
            d = self.work_dir / f"req{self._counter:06d}"
            self._recent.append(d)
            old = self._recent.popleft() if len(self._recent) > self._keep else None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def synthesize(self, s: Settings, tag: str = "") -> Result:
        """Validate, generate (x0 recorded at every step), vocode, write the wav, then the figures."""
        result = self.audio(s, tag)
        return self.render(result)

    def audio(self, s: Settings, tag: str = "") -> Result:
        """Validate, generate (x0 recorded at every step), vocode and write the wav; the figures are left
        to :meth:`render` so that the page can play the audio before they are drawn."""
        import torch

        from tortoise_lite.audio.io import save_wav

        t_start = time.perf_counter()
        kw = self.check(s)
        if self.threads:
            torch.set_num_threads(self.threads)  # per worker thread: OpenMP settings are thread-local
        kept: list[tuple[list[Any], Any]] = []

        def keep(wrapper: Any, start: int, stop: int) -> None:
            kept.append((list(wrapper.x0_preds), wrapper.final))

        with self._compute:  # one request computes at a time, whatever the queue's concurrency
            t0 = time.perf_counter()
            try:
                mels, wrapper = self.tts.generate_mels(**kw, recorder=keep, record_x0=True)
            except ValueError as e:  # e.g. a predicted length over the model's max_frames
                raise RequestError("text", str(e)) from None
            t1 = time.perf_counter()
            wav = self.tts.vocode(mels)[0]
            t2 = time.perf_counter()
        out = self._request_dir()
        name = f"tortoise_lite{('_' + tag) if tag else ''}_{kw['sampler']}_{kw['steps']}steps"
        name += f"_seed{kw['seed']}" if kw["seed"] is not None else ""
        wav_path = save_wav(out / f"{name}.wav", wav, self.tts.sample_rate)
        t_audio = time.perf_counter()
        preds, final = kept[-1]
        mel = mels[0]
        return Result(
            wav=Path(wav_path),
            frames=int(mel.shape[-1]),
            samples=int(wav.numel()),
            sample_rate=self.tts.sample_rate,
            sampler=wrapper.name,
            steps=int(kw["steps"]),
            nfe=int(wrapper.nfe),
            seed=kw["seed"],
            acoustic_seconds=t1 - t0,
            vocoder_seconds=t2 - t1,
            request_to_audio_seconds=t_audio - t_start,
            trajectory={"mel": mel, "preds": preds, "final": final, "ts": wrapper.ts, "text": kw["texts"][0]},
            token=int(out.name[3:]),
        )

    def render(self, result: Result) -> Result:
        """Draw the mel, the step strip and the band-settling plot of a result from :meth:`audio`."""
        if result.trajectory is None:
            return result
        t0 = time.perf_counter()
        tr = result.trajectory
        figs = self.figures(result.wav.parent, tr["mel"], tr["preds"], tr["final"], tr["ts"], tr["text"])
        result.mel_png, result.strip_png, result.bands_png = figs["mel"], figs["strip"], figs["bands"]
        result.settle_steps, result.band_labels = figs["settle_steps"], figs["band_labels"]
        result.figures_seconds = time.perf_counter() - t0
        result.trajectory = None  # the x0 predictions are not needed any more
        return result

    # -- figures -------------------------------------------------------------------------------------
    def band_settling(self, preds: list[Any], final: Any, frames: int) -> dict[str, Any]:
        """Per step and band, the mean |log-mel error| of the x0 prediction against the final sample,
        relative to the first step's (the trajectory measure of evaluation/spectral.py, for one item)."""
        import numpy as np

        from tortoise_lite.evaluation.spectral import SETTLE_FRACTION, _per_bin_abs, _to_bands, band_edges

        stats = self.tts.model.stats
        final_mel = stats.denormalize(final[:1])
        n_bands = min(self.n_bands, self.tts.mel_spec.n_mels)
        bands = band_edges(self.tts.mel_spec, n_bands)
        per_bin = np.stack(
            [_per_bin_abs(stats.denormalize(d[:1]), final_mel, [frames]).numpy() for d in preds]
        )
        err = _to_bands(per_bin, bands)  # (steps, bands)
        rel = err / np.maximum(err[:1], 1e-12)
        settle = []
        for b in range(len(bands)):
            below = np.nonzero(rel[:, b] <= SETTLE_FRACTION)[0]
            settle.append(int(below[0]) + 1 if below.size else None)
        labels = [f"{b['fmin_hz']:.0f}-{b['fmax_hz']:.0f} Hz" for b in bands]
        return {
            "error": err,
            "relative": rel,
            "settle_steps": settle,
            "labels": labels,
            "fraction": SETTLE_FRACTION,
        }

    def figures(
        self, out: Path, mel: Any, preds: list[Any], final: Any, ts: Any, text: str
    ) -> dict[str, Any]:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from tortoise_lite.evaluation.plots import save_mel_png

        spec = self.tts.mel_spec
        frames = int(mel.shape[-1])
        mel_png = save_mel_png(out / "mel.png", mel, spec, title=text)
        # the x0 prediction of every step (at most strip_panels of them, first and last always shown)
        n = len(preds)
        picks = sorted(set(np.linspace(0, n - 1, min(n, self.strip_panels)).round().astype(int).tolist()))
        stats = self.tts.model.stats
        imgs = [stats.denormalize(preds[k][:1])[0, :, :frames].numpy() for k in picks]
        floor = math.log(spec.log_floor)
        vmax = float(mel.max())
        fig = Figure(figsize=(1.55 * len(picks) + 0.4, 2.2), layout="constrained")
        axes = fig.subplots(1, len(picks), squeeze=False)[0]
        for ax, k, img in zip(axes, picks, imgs):
            ax.imshow(img, origin="lower", aspect="auto", vmin=floor, vmax=vmax, cmap="magma")
            ax.set_title(f"step {k + 1}/{n}\nt={float(ts[k]):.3f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0].set_ylabel("mel bin (low at bottom)", fontsize=7)
        FigureCanvasAgg(fig)
        strip_png = out / "steps.png"
        fig.savefig(strip_png, dpi=100)
        # how settled each band is after each step
        bs = self.band_settling(preds, final, frames)
        rel = bs["relative"]
        fig = Figure(figsize=(6.4, 3.0), layout="constrained")
        ax = fig.add_subplot()
        steps = np.arange(1, n + 1)
        colors = __import__("matplotlib").colormaps["viridis"](np.linspace(0, 0.9, rel.shape[1]))
        for b in range(rel.shape[1]):
            ax.plot(
                steps, np.maximum(rel[:, b], 1e-4), marker="o", ms=3, color=colors[b], label=bs["labels"][b]
            )
        ax.axhline(bs["fraction"], color="k", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("sampling step")
        ax.set_ylabel("error vs final / first step's\n(lower = settled)")
        ax.legend(fontsize=6, ncols=2, title="mel band", title_fontsize=7)
        FigureCanvasAgg(fig)
        bands_png = out / "bands.png"
        fig.savefig(bands_png, dpi=100)
        return {
            "mel": Path(mel_png),
            "strip": strip_png,
            "bands": bands_png,
            "settle_steps": bs["settle_steps"],
            "band_labels": bs["labels"],
        }


def error_markdown(e: BaseException) -> str:
    if isinstance(e, RequestError):
        return f"**Error in {e.field}** — {str(e)[len(e.field) + 2 :]}"
    return (
        f"**Error** — {type(e).__name__}: {' '.join(str(e).split())[:400]} (the server log has the details)"
    )


# ---------------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------------
CSS = """
.tl-figure { padding-top: 2.4em !important; }  /* the block's label and buttons sit above the figure, not on it */
#status .prose, #status_compare .prose { color: #b42318; }
footer { display: none !important; }
"""


def _import_gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        import gradio as gr
    except ImportError as e:
        raise UsageError(
            'the web page needs Gradio, an optional extra: pip install -e ".[web]" (or pip install gradio)'
        ) from e
    return gr


def build_app(engine: ServeEngine, title: str = "tortoise_lite", model_line: str = "") -> Any:
    """The Gradio Blocks of the page (not launched)."""
    gr = _import_gradio()
    from tortoise_lite.diffusion.samplers import SAMPLERS

    tts = engine.tts
    samplers = sorted(SAMPLERS)
    speakers = [ANY_SPEAKER, *tts.speakers]
    presets = list_presets()
    voices_ok = voice_model(tts)
    voices = engine.voice_names()

    def widgets(suffix: str = "") -> dict[str, Any]:
        w: dict[str, Any] = {}
        with gr.Row():
            w["speaker"] = gr.Dropdown(
                speakers,
                value=ANY_SPEAKER,
                label="Speaker",
                visible=len(speakers) > 1,
                elem_id=f"speaker{suffix}",
            )
            w["voice"] = gr.Dropdown(
                [AVERAGE_VOICE, *voices],
                value=AVERAGE_VOICE,
                label="Voice (trained, voices_dir)",
                visible=voices_ok and bool(voices),
                elem_id=f"voice{suffix}",
            )
            w["reference_clip"] = gr.Audio(
                label="Reference clip (speaks in its voice; overrides the voice list)",
                type="filepath",
                sources=["upload"],
                visible=voices_ok,
                elem_id=f"reference_clip{suffix}",
            )
        with gr.Row():
            w["guidance"] = gr.Number(
                1.0, label="Guidance", minimum=0, maximum=20, step=0.5, elem_id=f"guidance{suffix}"
            )
            w["seed"] = gr.Number(
                0, label="Seed (empty = fresh noise)", precision=0, minimum=0, elem_id=f"seed{suffix}"
            )
            w["temperature"] = gr.Number(
                engine.default_temperature,
                label="Temperature",
                minimum=0.01,
                step=0.05,
                elem_id=f"temperature{suffix}",
            )
            w["length_scale"] = gr.Number(
                1.0,
                label="Length scale (>1 slower)",
                minimum=0.25,
                maximum=4,
                step=0.05,
                elem_id=f"length_scale{suffix}",
            )
        return w

    def audio_outputs(o: dict[str, Any], suffix: str, label: str = "") -> None:
        o["audio"] = gr.Audio(
            label=f"Audio{label}",
            type="filepath",
            interactive=False,
            buttons=["download"],
            # the browser's own <audio controls> player (its src is the wav) rather than a drawn waveform
            waveform_options=gr.WaveformOptions(show_recording_waveform=False),
            elem_id=f"audio{suffix}",
        )
        o["download"] = gr.DownloadButton("Download wav", visible=False, elem_id=f"download{suffix}")
        o["summary"] = gr.Markdown(elem_id=f"summary{suffix}")

    def figure_outputs(o: dict[str, Any], suffix: str, label: str = "", side_by_side: bool = True) -> None:
        def image(key: str, text: str) -> None:
            o[key] = gr.Image(label=text + label, type="filepath", format="png", interactive=False,
                              elem_id=f"{key}{suffix}", elem_classes=["tl-figure"])  # fmt: skip

        image("strip", "Denoising: the x0 prediction at each sampling step")
        with gr.Row(equal_height=False) if side_by_side else gr.Column():
            image("mel", "Mel spectrogram")
            image("bands", "Denoising: how much each frequency band has settled")

    def shown(r: Result | None) -> list[Any]:
        """audio, download, summary, mel, strip, bands: the audio first, figures cleared until drawn."""
        if r is None:
            return [None, gr.update(value=None, visible=False), "", None, None, None]
        wav = str(r.wav)
        return [wav, gr.update(value=wav, visible=True), r.summary_markdown(), None, None, None]

    def drawn(r: Result | None, session: dict | None = None, key: str = "one") -> list[Any]:
        """summary, mel, strip, bands once the figures are drawn (nothing changes for a failed request, nor
        for one that a newer request of the same page has replaced while its figures waited)."""
        stale = [gr.update(), gr.update(), gr.update(), gr.update()]
        if r is None or (session is not None and session.get(key) != r.token):
            return stale
        try:
            engine.render(r)
        except Exception as e:  # the audio stays; the error is said where the figures would be
            traceback.print_exc()
            return [
                r.summary_markdown() + f"\n\n**Figures failed** — {type(e).__name__}: {e}",
                None,
                None,
                None,
            ]
        if session is not None and session.get(key) != r.token:
            return stale
        return [r.summary_markdown(), str(r.mel_png), str(r.strip_png), str(r.bands_png)]

    def settings(text, speaker, voice, clip, sampler, steps, guidance, seed, temperature, length_scale):
        return Settings(text=text, speaker=speaker, voice=voice, reference_clip=clip, sampler=sampler, steps=steps,
                        guidance=guidance, seed=seed, temperature=temperature, length_scale=length_scale)  # fmt: skip

    def failed(e: Exception) -> str:
        if not isinstance(e, RequestError):
            traceback.print_exc()  # the page shows one line; the server log keeps the traceback
        return error_markdown(e)

    def run_one(
        text, speaker, voice, clip, sampler, steps, guidance, seed, temperature, length_scale, session
    ):
        session = {**(session or {}), "one": None}
        try:
            r = engine.audio(settings(text, speaker, voice, clip, sampler, steps, guidance, seed,
                                      temperature, length_scale))  # fmt: skip
            session["one"] = r.token
            return ["", *shown(r), r, session]
        except Exception as e:  # the page shows it; the server keeps serving
            return [failed(e), *shown(None), None, session]

    def run_compare(
        text, speaker, voice, clip, guidance, seed, temperature, length_scale, sa, na, sb, nb, session
    ):
        session = {**(session or {}), "A": None, "B": None}
        try:
            ra = engine.audio(settings(text, speaker, voice, clip, sa, na, guidance, seed, temperature,
                                       length_scale), tag="A")  # fmt: skip
            rb = engine.audio(settings(text, speaker, voice, clip, sb, nb, guidance, seed, temperature,
                                       length_scale), tag="B")  # fmt: skip
            session["A"], session["B"] = ra.token, rb.token
            return ["", *shown(ra), *shown(rb), [ra, rb], session]
        except Exception as e:
            return [failed(e), *shown(None), *shown(None), None, session]

    def draw_compare(pair, session):
        ra, rb = pair if pair else (None, None)
        return [
            *drawn(ra, session, "A"),
            *drawn(rb, session, "B"),
            None,
        ]  # None: the x0 predictions are let go

    def draw_one(r, session):
        return [*drawn(r, session, "one"), None]

    def apply_preset(name):
        keys = ("sampler", "steps", "guidance", "temperature", "length_scale")
        if not name or name == NO_PRESET:
            return [gr.update() for _ in keys]
        values = preset_settings(name)
        return [gr.update(value=values[k]) if k in values else gr.update() for k in keys]

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(f"## {title}\n{model_line}")
        with gr.Tab("Synthesize"):
            with gr.Row():
                with gr.Column(scale=2):
                    text = gr.Textbox(example_text(tts), lines=4, max_lines=12, label="Text", elem_id="text",
                                      info=f"up to {engine.max_chars} characters; lines are read as one utterance")  # fmt: skip
                    with gr.Row():
                        preset = gr.Dropdown([NO_PRESET, *presets], value=NO_PRESET, label="Preset",
                                             visible=bool(presets), elem_id="preset")  # fmt: skip
                        sampler = gr.Dropdown(
                            samplers, value=engine.default_sampler, label="Sampler", elem_id="sampler"
                        )
                        steps = gr.Number(engine.default_steps, label="Steps", precision=0, minimum=1,
                                          maximum=engine.max_steps, elem_id="steps")  # fmt: skip
                    w = widgets()
                    button = gr.Button("Synthesize", variant="primary", elem_id="synthesize")
                    status = gr.Markdown(elem_id="status")
                with gr.Column(scale=3):
                    o: dict[str, Any] = {}
                    audio_outputs(o, "")
            figure_outputs(o, "")
        with gr.Tab("Compare", elem_id="compare_tab"):
            gr.Markdown(
                "The same text, seed and settings with two samplers or two step counts, side by side."
            )
            text_c = gr.Textbox(example_text(tts), lines=2, label="Text", elem_id="text_compare")
            wc = widgets("_compare")
            with gr.Row():
                with gr.Column():
                    sampler_a = gr.Dropdown(samplers, value=engine.default_sampler, label="A: sampler",
                                            elem_id="sampler_a")  # fmt: skip
                    steps_a = gr.Number(min(4, engine.default_steps), label="A: steps", precision=0, minimum=1,
                                        maximum=engine.max_steps, elem_id="steps_a")  # fmt: skip
                with gr.Column():
                    sampler_b = gr.Dropdown(samplers, value=engine.default_sampler, label="B: sampler",
                                            elem_id="sampler_b")  # fmt: skip
                    steps_b = gr.Number(engine.default_steps, label="B: steps", precision=0, minimum=1,
                                        maximum=engine.max_steps, elem_id="steps_b")  # fmt: skip
            button_c = gr.Button("Compare", variant="primary", elem_id="compare")
            status_c = gr.Markdown(elem_id="status_compare")
            oa: dict[str, Any] = {}
            ob: dict[str, Any] = {}
            with gr.Row():
                for side, suffix, label in ((oa, "_a", " (A)"), (ob, "_b", " (B)")):
                    with gr.Column():
                        audio_outputs(side, suffix, label)
                        figure_outputs(side, suffix, label, side_by_side=False)

        order = ["audio", "download", "summary", "mel", "strip", "bands"]
        later = ["summary", "mel", "strip", "bands"]
        common = ["speaker", "voice", "reference_clip"]
        tail = ["guidance", "seed", "temperature", "length_scale"]
        pending = gr.State(None)  # the request whose figures are still to be drawn
        pending_c = gr.State(None)
        session = gr.State({})  # per page: the token of the latest request of each tab
        # the audio first (queued for the one model), then the figures (a queue of their own)
        button.click(
            run_one,
            inputs=[text, *[w[k] for k in common], sampler, steps, *[w[k] for k in tail], session],
            outputs=[status, *[o[k] for k in order], pending, session],
            concurrency_id="model",
            api_name="synthesize",
        ).then(
            draw_one,
            inputs=[pending, session],
            outputs=[*[o[k] for k in later], pending],
            concurrency_id="figures",
            api_visibility="undocumented",
        )
        button_c.click(
            run_compare,
            inputs=[
                text_c,
                *[wc[k] for k in common],
                *[wc[k] for k in tail],
                sampler_a,
                steps_a,
                sampler_b,
                steps_b,
                session,
            ],
            outputs=[status_c, *[oa[k] for k in order], *[ob[k] for k in order], pending_c, session],
            concurrency_id="model",
            api_name="compare",
        ).then(
            draw_compare,
            inputs=[pending_c, session],
            outputs=[*[oa[k] for k in later], *[ob[k] for k in later], pending_c],
            concurrency_id="figures",
            api_visibility="undocumented",
        )
        preset.change(
            apply_preset,
            inputs=[preset],
            outputs=[sampler, steps, w["guidance"], w["temperature"], w["length_scale"]],
            queue=False,
        )
    return demo


def run(cfg: DictConfig) -> int:
    from tortoise_lite.api import TextToSpeech, load_checkpoint

    ckpt = require(cfg, "ckpt", "the text-to-mel checkpoint (e.g. outputs/speech/checkpoints/last.ckpt)")
    host = str(cfg.host)
    port = int(cfg.port)
    if not 0 <= port <= 65535:
        raise UsageError(f"port={port} is not a TCP port; give 1-65535 (0 = any free port)")
    for key in ("queue_size", "concurrency", "max_chars", "max_steps"):
        if int(cfg[key]) < 1:
            raise UsageError(f"{key}={cfg[key]} must be >= 1")
    gr = _import_gradio()  # before loading the model: a missing extra is reported at once
    device = setup_torch(cfg)
    model, info = load_checkpoint(str(ckpt), device=device, use_ema=bool(cfg.use_ema))
    voices_dir = cfg.get("voices_dir")
    if voices_dir and not Path(str(voices_dir)).expanduser().is_dir():
        raise UsageError(f"voices_dir={voices_dir}: no such folder (one sub-folder of clips per voice)")
    tts = TextToSpeech(
        model,
        vocoder=build_vocoder_spec(cfg, model.mel_spec),
        device=device,
        info=info,
        voices_dir=voices_dir or None,
    )
    if voices_dir and not voice_model(tts):
        print(
            f"note: voices_dir={voices_dir} is not used: this checkpoint was trained without reference clips"
        )
    threads = int(cfg.threads) if cfg.get("threads") else None
    engine = ServeEngine(
        tts,
        work_dir=cfg.get("work_dir"),
        threads=threads,
        max_chars=int(cfg.max_chars),
        max_steps=int(cfg.max_steps),
        strip_panels=int(cfg.strip_panels),
        n_bands=int(cfg.n_bands),
        voices_dir=str(voices_dir) if voices_dir else None,
    )
    import torch

    speakers = f", speakers: {', '.join(tts.speakers)}" if tts.speakers else ""
    model_line = (
        f"`{ckpt}` (step {getattr(info, 'global_step', '?')}{speakers}) · vocoder {type(tts.vocoder).__name__} · "
        f"{tts.sample_rate} Hz, {tts.mel_spec.n_mels} mels · {device}, {threads or torch.get_num_threads()} threads"
    )
    demo = build_app(engine, title=str(cfg.title), model_line=model_line)
    demo.queue(max_size=int(cfg.queue_size), default_concurrency_limit=int(cfg.concurrency))
    if host not in LOOPBACK:
        print(f"warning: host={host}: anyone who can reach this machine on port {port} can use the page")
    print(
        f"serving {ckpt} on http://{host}:{port} (queue {cfg.queue_size}, concurrency {cfg.concurrency}, "
        f"threads {threads or torch.get_num_threads()}); Ctrl+C stops",
        flush=True,
    )
    try:
        _launch(demo, cfg, host, port, engine, gr)
    except OSError as e:
        if "port" in str(e).lower() or getattr(e, "errno", None) in (98, 48):
            raise UsageError(
                f"port={port} on {host} is taken or not allowed ({' '.join(str(e).split())[:120]}); "
                "choose another port=N, or port=0 for the first free one from 7860"
            ) from e
        raise
    return 0


def _launch(demo: Any, cfg: DictConfig, host: str, port: int, engine: ServeEngine, gr: Any) -> None:
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )  # local fonts: the page loads nothing from outside
    demo.launch(
        server_name=host,
        server_port=port or None,
        share=False,
        show_error=True,
        ssr_mode=False,
        quiet=bool(cfg.quiet),
        allowed_paths=[str(engine.work_dir)],
        footer_links=[],
        theme=theme,
        css=CSS,
        max_file_size="20mb",
    )


def main(argv: list[str] | None = None) -> int:
    return run_cli("serve", lambda args: run(compose("serve", args)), argv, USAGE)


if __name__ == "__main__":
    sys.exit(main())
