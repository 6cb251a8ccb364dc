"""Digit recognition of generated speech: a small classifier trained on real recordings (FSDD).

The Free Spoken Digit Dataset (FSDD) is never shipped: callers pass the folder that holds its
``recordings/{digit}_{speaker}_{take}.wav`` (8 kHz digit words). Conventional split: takes 0-4 are the
test set, 5-49 the training set. A TTS model trained on takes 5-49 is judged by a classifier trained on
takes 0-4, recordings the TTS model never saw:

- input: the log-mel, in the TTS checkpoint's ``MelSpec``, of audio passed through the same mel +
  Griffin-Lim pipeline as generated speech (recording -> mel -> Griffin-Lim -> mel), so vocoder artifacts
  are not what the classifier keys on; each utterance is centred in a fixed window and its level removed
  (log-mel minus its loudest value);
- model: a plain-torch CNN (~40 k parameters), augmented with gain, time shift, tempo and noise, trained
  for 200 epochs (about a minute on two cores): with 40 epochs it was undertrained (ceiling 90.7 % instead of
  96.4 % on FSDD's four speakers) and its misses, not the speech, decided the per-speaker figures;
- its ceiling: accuracy on the other takes (5-49) through the same pipeline, per speaker.

``evaluate_checkpoint(ckpt, fsdd)`` generates every digit for every speaker of a checkpoint and returns
accuracy per speaker next to that ceiling.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_TAKES = range(0, 5)
TRAIN_TAKES = range(5, 50)
_CACHE_VERSION = 3  # bump when the classifier or its training changes (cached weights are then retrained)
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


class FsddError(ValueError):
    """The FSDD folder is missing or holds no recordings named ``{digit}_{speaker}_{take}.wav``."""


@dataclass(frozen=True)
class FsddFile:
    path: Path
    digit: int
    speaker: str
    take: int


def fsdd_files(
    data: str | Path, takes: range | None = None, speakers: list[str] | None = None
) -> list[FsddFile]:
    """The recordings under ``data/recordings`` (or ``data`` itself) with the given takes/speakers, sorted."""
    root = Path(data).expanduser()
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    if not folder.is_dir():
        raise FsddError(
            f"{root}: not found; pass the Free Spoken Digit Dataset folder (holding recordings/*.wav)"
        )
    files = []
    for p in sorted(folder.glob("*.wav")):
        m = _NAME.match(p.name)
        if not m:
            continue
        f = FsddFile(p, int(m.group(1)), m.group(2), int(m.group(3)))
        if (takes is None or f.take in takes) and (speakers is None or f.speaker in speakers):
            files.append(f)
    if not files:
        raise FsddError(
            f"{folder}: no FSDD recordings named {{digit}}_{{speaker}}_{{take}}.wav"
            + (f" with takes {takes.start}-{takes.stop - 1}" if takes is not None else "")
            + (f" of speakers {speakers}" if speakers else "")
        )
    return files


# ---------------------------------------------------------------------------------------------- features
def through_vocoder(log_mel: Tensor, vocoder) -> Tensor:
    """``(n_mels, T)`` log-mel -> the log-mel of its vocoder rendering (same MelSpec), ``(n_mels, T')``."""
    wav = vocoder(log_mel[None].float())[0]
    return vocoder.mel_spec(wav)


def recording_mels(files: list[FsddFile], mel_spec, vocoder) -> list[Tensor]:
    """Each recording resampled to the MelSpec's rate -> mel -> vocoder -> mel."""
    from tortoise_lite.audio.io import load_audio

    return [through_vocoder(mel_spec(load_audio(f.path, mel_spec.sample_rate)), vocoder) for f in files]


def _window(mel_spec) -> int:
    """Frames of the classifier's fixed window: 1.2 s (FSDD words last 0.2-0.9 s)."""
    return int(round(1.2 * mel_spec.frames_per_second))


def fit_window(log_mel: Tensor, frames: int, floor: float, shift: int = 0) -> Tensor:
    """Level-free log-mel (minus its maximum, clamped at ``floor``) centred (+ ``shift``) in ``frames``."""
    x = (log_mel - log_mel.max()).clamp_min(floor)
    t = x.shape[-1]
    if t > frames:  # keep the loudest part: crop around the energy centroid
        energy = (x - floor).sum(0)
        centre = int((energy * torch.arange(t)).sum() / energy.sum().clamp_min(1e-9))
        start = min(max(0, centre - frames // 2), t - frames)
        x = x[:, start : start + frames]
        t = frames
    out = torch.full((x.shape[0], frames), floor)
    start = min(max(0, (frames - t) // 2 + shift), frames - t)
    out[:, start : start + t] = x
    return out


# ---------------------------------------------------------------------------------------------- model
class DigitClassifier(nn.Module):
    """Log-mel window ``(B, n_mels, T)`` -> digit logits ``(B, 10)``: 3 conv blocks, then the frequency
    rows as features (where the formants are matters), mean- and max-pooled over time."""

    def __init__(self, n_mels: int, width: int = 32, floor: float = -12.0) -> None:
        super().__init__()
        self.n_mels, self.floor = n_mels, floor
        chans = [1, width // 2, width, width * 2]
        blocks = []
        for a, b in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        rows = n_mels // 2 ** (len(chans) - 1)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(2 * chans[-1] * rows, 10))

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(((x - self.floor / 2) / (-self.floor / 2))[:, None])  # to about [-1, 1]
        h = h.flatten(1, 2)  # (B, C * F', T')
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=1))


@dataclass
class TrainedClassifier:
    """A trained classifier with the MelSpec and window it expects; ``predict`` takes raw log-mels."""

    model: DigitClassifier
    mel_spec: object
    frames: int
    train_seconds: float
    n_train: int

    @torch.no_grad()
    def predict(self, log_mels: list[Tensor]) -> Tensor:
        self.model.eval()
        x = torch.stack([fit_window(m.float().cpu(), self.frames, self.model.floor) for m in log_mels])
        return self.model(x).argmax(-1)


def _augment(m: Tensor, frames: int, floor: float, g: torch.Generator) -> Tensor:
    """Gain (+-6 dB before the level is removed: moves the floor), tempo 0.8-1.25, vocal-tract-length-like
    frequency scaling 0.9-1.1, time shift, noise."""
    u = torch.rand(5, generator=g)
    m = m + (u[0] * 1.4 - 0.7)  # gain in natural-log units (+-6 dB)
    rate = float(0.8 * (1.25 / 0.8) ** u[1])
    t = max(2, int(round(m.shape[-1] * rate)))
    n_mels = m.shape[0]
    f = max(2, int(round(n_mels * float(0.9 + 0.2 * u[4]))))
    m = F.interpolate(m[None, None], size=(f, t), mode="bilinear", align_corners=False)[0, 0]
    m = m[:n_mels] if f >= n_mels else torch.cat([m, m[-1:].expand(n_mels - f, t)], 0)
    spare = max(0, frames - t)
    shift = int((u[2] - 0.5) * spare)
    x = fit_window(m, frames, floor, shift)
    x = x + 0.3 * u[3] * torch.randn(x.shape, generator=g)
    return x.clamp_min(floor)


def train_classifier(
    mels: list[Tensor],
    labels: list[int],
    mel_spec,
    seed: int = 0,
    epochs: int = 200,
    batch_size: int = 32,
    lr: float = 3e-3,
) -> TrainedClassifier:
    """Train a :class:`DigitClassifier` on raw log-mels (already through the vocoder pipeline)."""
    t0 = time.monotonic()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    frames = _window(mel_spec)
    model = DigitClassifier(mel_spec.n_mels)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    steps = epochs * ((len(mels) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    y_all = torch.tensor(labels)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(mels), generator=g)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = torch.stack([_augment(mels[j], frames, model.floor, g) for j in idx.tolist()])
            loss = F.cross_entropy(model(x), y_all[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return TrainedClassifier(model, mel_spec, frames, time.monotonic() - t0, len(mels))


def accuracy_by_speaker(pred: Tensor, labels: list[int], speakers: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for s in sorted(set(speakers)):
        idx = [i for i, sp in enumerate(speakers) if sp == s]
        hits = sum(int(pred[i]) == labels[i] for i in idx)
        out[s] = {"accuracy": hits / len(idx), "n": len(idx)}
    return out


def classifier_for(
    mel_spec,
    fsdd: str | Path,
    seed: int = 0,
    vocoder=None,
    ceiling: bool = True,
    cache_dir: str | Path | None = None,
) -> tuple[TrainedClassifier, dict]:
    """Train on takes 0-4 of every FSDD speaker through mel + ``vocoder`` (Griffin-Lim); measure the ceiling
    (accuracy on takes 5-49 through the same pipeline, per speaker) when ``ceiling``.

    With ``cache_dir`` the trained weights and figures are kept in ``digits-<MelSpec key>-seed<seed>.pt`` and
    reused by later calls with the same MelSpec and seed (the default Griffin-Lim vocoder only)."""
    from tortoise_lite.vocoders import GriffinLim

    cache = None
    if cache_dir is not None and vocoder is None and ceiling:
        cache = Path(cache_dir) / f"digits-v{_CACHE_VERSION}-{mel_spec.key}-seed{seed}.pt"
        if cache.is_file():
            saved = torch.load(cache, weights_only=True)
            model = DigitClassifier(mel_spec.n_mels)
            model.load_state_dict(saved["state_dict"])
            model.eval()
            info = dict(saved["info"], cached=str(cache))
            return TrainedClassifier(
                model, mel_spec, saved["frames"], info["classifier_train_s"], saved["n"]
            ), info
    vocoder = vocoder or GriffinLim(mel_spec)
    train = fsdd_files(fsdd, takes=TEST_TAKES)
    t0 = time.monotonic()
    mels = recording_mels(train, mel_spec, vocoder)
    prep = time.monotonic() - t0
    clf = train_classifier(mels, [f.digit for f in train], mel_spec, seed=seed)
    info = {
        "classifier_train_items": len(train),
        "classifier_features_s": prep,
        "classifier_train_s": clf.train_seconds,
    }
    if ceiling:
        held = fsdd_files(fsdd, takes=TRAIN_TAKES)
        pred = clf.predict(recording_mels(held, mel_spec, vocoder))
        labels = [f.digit for f in held]
        info["ceiling_by_speaker"] = accuracy_by_speaker(pred, labels, [f.speaker for f in held])
        info["ceiling"] = float(sum(int(p) == y for p, y in zip(pred, labels)) / len(labels))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save(
            {"state_dict": clf.model.state_dict(), "info": info, "frames": clf.frames, "n": clf.n_train}, tmp
        )
        tmp.replace(cache)
    return clf, info


# ---------------------------------------------------------------------------------------------- evaluation
def generate_digits(model, speakers: list[str], seeds: int = 3, words: tuple[str, ...] = DIGIT_WORDS):
    """Every digit word for every speaker, ``seeds`` times: -> (mels list (n_mels, T), digits, speaker names)."""
    mels, digits, names = [], [], []
    for s_id, name in enumerate(speakers):
        for seed in range(seeds):
            texts = list(words)
            spk = torch.full((len(texts),), s_id, dtype=torch.long) if model.n_speakers else None
            mel, lengths = model.generate(texts=texts, seed=1000 * seed + s_id, speaker=spk)
            for d in range(len(texts)):
                mels.append(mel[d, :, : int(lengths[d])].float().cpu())
                digits.append(d)
                names.append(name)
    return mels, digits, names


def evaluate_checkpoint(
    ckpt: str | Path,
    fsdd: str | Path,
    seeds: int = 3,
    classifier_seed: int = 0,
    cache_dir: str | Path | None = None,
    temperature: float | None = None,
) -> dict:
    """Digit accuracy of a checkpoint's generated speech per speaker, next to the classifier's ceiling.

    ``temperature``: sample at this noise scale instead of the checkpoint's (``model.temperature``).

    The checkpoint's speakers are matched to FSDD speakers by name (the folder layout's sub-folders); the
    ceiling is computed for the speakers the checkpoint has (all FSDD speakers for a single-speaker model).
    """
    from tortoise_lite.checkpoint import load_text_to_mel
    from tortoise_lite.vocoders import GriffinLim

    model, info = load_text_to_mel(ckpt)
    if temperature is not None:
        model.temperature = float(temperature)
    spec = info.mel_spec
    vocoder = GriffinLim(spec)
    clf, cinfo = classifier_for(spec, fsdd, seed=classifier_seed, cache_dir=cache_dir)
    speakers = list(info.speakers) or ["(single)"]
    t0 = time.monotonic()
    mels, digits, names = generate_digits(model, speakers, seeds=seeds)
    gen_s = time.monotonic() - t0
    pred = clf.predict([through_vocoder(m, vocoder) for m in mels])
    per = accuracy_by_speaker(pred, digits, names)
    confusion = torch.zeros(10, 10, dtype=torch.long)
    for p, y in zip(pred.tolist(), digits):
        confusion[y, p] += 1
    for name, entry in per.items():
        entry["ceiling"] = cinfo["ceiling_by_speaker"].get(name, {"accuracy": cinfo["ceiling"]})["accuracy"]
    return {
        "accuracy": float(sum(int(p) == y for p, y in zip(pred, digits)) / len(digits)),
        "ceiling": cinfo["ceiling"],
        "speakers": per,
        "seeds": seeds,
        "steps": info.global_step,
        "generate_s": gen_s,
        "confusion": confusion.tolist(),
        "classifier": {k: v for k, v in cinfo.items() if k != "ceiling_by_speaker"},
        "ceiling_all_speakers": cinfo["ceiling_by_speaker"],
    }
