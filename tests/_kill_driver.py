"""Fault-injection driver of the kill-and-resume stress tests (``tests/test_train_kill.py``).

    python tests/_kill_driver.py PLAN.json RESULT.json

PLAN: ``{"chains": {NAME: [LEG, ...]}, "warm_pghi": bool}``; a LEG is ``{"argv": [...], "kill": KILL}``
(optionally ``"record_batches": PATH``: append ``<batches trained> <hash of the batch>`` per training batch;
``"spare": true``: run only if no earlier leg of the chain finished).
The training app is imported once here; every leg then runs ``tortoise_lite.train.main(argv)`` (the real
``python -m tortoise_lite.train``) in a forked child, so a leg costs no 5-second import on a 2-core
machine. A kill is a real SIGKILL of that child, at one of these moments:

    {"hook": H, "step": S}          sent by the child to itself in Lightning hook H (any callback hook,
                                    e.g. on_validation_batch_start, on_train_epoch_end, on_before_optimizer_step)
                                    once trainer.global_step >= S
    {"hook": "ckpt_write", "step": S}   halfway through writing a checkpoint of global_step >= S
    {"hook": "ckpt_rename", "step": S}  when that checkpoint's temporary file is complete, before the rename
    {"delay": D, "step": S}         sent by this driver D seconds after the fork, or by the child itself at
                                    the start of step S if it gets there first (so a chain keeps its order)
    null                            no kill: the leg must finish

RESULT: per chain, per leg: ``{"outcome": "killed" | "exit <rc>", "moment": what the child recorded just
before killing itself (hook and step), "seconds": wall time}``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch


def _die(note: Path, moment: str) -> None:
    with open(note, "w", encoding="utf-8") as f:
        f.write(moment)
    os.kill(os.getpid(), signal.SIGKILL)


def _install(kill: dict, note: Path) -> None:
    """In the child: arrange the SIGKILL that ``kill`` describes."""
    import lightning.pytorch as pl

    hook, step = kill.get("hook"), int(kill.get("step", 0))
    if hook in ("ckpt_write", "ckpt_rename"):
        real_save, real_replace = torch.save, os.replace
        pending = {"step": None}

        def save(obj, f, *args, **kwargs):
            s = obj.get("global_step") if isinstance(obj, dict) else None
            name = str(getattr(f, "name", f))
            if s is None or not name.endswith(".ckpt.tmp") or s < step:
                return real_save(obj, f, *args, **kwargs)
            if hook == "ckpt_rename":
                pending["step"] = s
                return real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])  # half a checkpoint on disk, then the kill
            f.flush()
            os.fsync(f.fileno())
            _die(note, f"ckpt_write step={s} bytes={len(data) // 2}/{len(data)}")

        def replace(src, dst, *args, **kwargs):
            if pending["step"] is not None and str(dst).endswith(".ckpt"):
                _die(note, f"ckpt_rename step={pending['step']} tmp={Path(src).name}")
            return real_replace(src, dst, *args, **kwargs)

        torch.save = save
        os.replace = replace
        return

    guard_hook = "on_train_batch_start" if "delay" in kill else hook

    class KillAt(pl.Callback):
        pass

    def fire(self, trainer, *args, **kwargs):
        if trainer.global_step >= step:
            _die(note, f"{guard_hook} step={trainer.global_step} epoch={trainer.current_epoch}")

    setattr(KillAt, guard_hook, fire)
    real_init = pl.Trainer.__init__

    def init(self, *args, callbacks=None, **kwargs):
        real_init(self, *args, callbacks=[*(callbacks or []), KillAt()], **kwargs)

    pl.Trainer.__init__ = init


def _record_batches(path: Path) -> None:
    """In the child: append ``<batches trained> <hash of the batch tensors>`` to ``path`` at every training
    batch (the vocoder's audit of which segments it trained on, in which order; the text-to-mel app has
    ``record_items``)."""
    import hashlib

    import lightning.pytorch as pl

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            tensors = batch if isinstance(batch, (list, tuple)) else [batch]
            digest = hashlib.sha1(b"".join(t.detach().cpu().numpy().tobytes() for t in tensors)).hexdigest()
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{int(getattr(pl_module, 'batches_seen', trainer.global_step))} {digest[:16]}\n")

    real_init = pl.Trainer.__init__

    def init(self, *args, callbacks=None, **kwargs):
        real_init(self, *args, callbacks=[*(callbacks or []), Record()], **kwargs)

    pl.Trainer.__init__ = init


def run_leg(leg: dict, note: Path) -> dict:
    from tortoise_lite.train import main

    kill = leg.get("kill")
    note.unlink(missing_ok=True)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the training process
        code = 1
        try:
            if leg.get("record_batches"):
                _record_batches(Path(leg["record_batches"]))
            if kill:
                _install(kill, note)
            code = main(list(leg["argv"]))
        except BaseException as e:  # report, never return into the driver's loop
            print(f"leg failed: {e!r}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = start + float(kill["delay"]) if kill and "delay" in kill else None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            note.write_text(f"delay {kill['delay']:.2f} s", encoding="utf-8")
            break
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        outcome = "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"
    else:
        outcome = f"exit {os.WEXITSTATUS(status)}"
    moment = note.read_text(encoding="utf-8") if note.exists() else None
    return {"outcome": outcome, "moment": moment, "seconds": round(time.monotonic() - start, 2)}


def main(plan_path: str, result_path: str) -> None:
    torch.set_num_threads(1)
    import tortoise_lite.train  # noqa: F401  (imported once, inherited by every forked leg)
    import tortoise_lite.training.app  # noqa: F401
    import tortoise_lite.training.vocoder_module  # noqa: F401

    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    if plan.get("warm_pghi"):  # compile the numba kernel once here, not in every leg
        from tortoise_lite.audio.mel import MelSpec
        from tortoise_lite.vocoders.pghi import pghi_phase

        pghi_phase(torch.rand(1, 513, 4) + 0.1, MelSpec())
    results: dict[str, list[dict]] = {}
    note = Path(result_path).with_suffix(".moment")
    for name, legs in plan["chains"].items():
        results[name] = []
        for leg in legs:
            if leg.get("spare") and any(r["outcome"] == "exit 0" for r in results[name]):
                continue  # spares only replace a final leg that a random kill hit
            results[name].append(run_leg(leg, note))
            Path(result_path).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
