"""The web page in a real browser: Chromium (Debian's package) driven by Playwright, against the real server
(``python -m tortoise_lite.serve``) started on a free loopback port with a tiny checkpoint trained here.

Skipped, with the reason, when Playwright, Gradio or a Chromium executable is missing; ``.ci/run`` installs
them and sets ``TORTOISE_LITE_REQUIRE_BROWSER=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 240_000  # per wait; generous: the two cores are often shared


def chromium_path() -> str | None:
    """``TORTOISE_LITE_CHROMIUM`` when set (and executable), else Debian's /usr/bin/chromium or one on PATH."""
    chosen = os.environ.get("TORTOISE_LITE_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() and os.access(chosen, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the browser test cannot run here (None: it can)."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        return 'Playwright for Python is not installed (pip install -e ".[web,browser-tests]")'
    if importlib.util.find_spec("gradio") is None:
        return 'Gradio is not installed (pip install -e ".[web]")'
    if chromium_path() is None:
        where = os.environ.get("TORTOISE_LITE_CHROMIUM") or "/usr/bin/chromium or PATH"
        return (
            f"no Chromium executable at {where} (apt-get install chromium, or TORTOISE_LITE_CHROMIUM=/path)"
        )
    return None


# Decided at collection, before any fixture runs (the session's tiny checkpoint is not trained for a skip).
WHY_NOT = missing()
if WHY_NOT is not None and os.environ.get("TORTOISE_LITE_REQUIRE_BROWSER", "") not in ("", "0"):
    pytest.fail(f"browser test required (TORTOISE_LITE_REQUIRE_BROWSER=1) but {WHY_NOT}", pytrace=False)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(WHY_NOT is not None, reason=f"browser test skipped: {WHY_NOT}"),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tones_ckpt, tmp_path_factory):
    """The real server on a free loopback port: ``(url, process, log path)``."""
    from _train_utils import subprocess_env

    work = tmp_path_factory.mktemp("serve")
    log = work / "server.log"
    port = free_port()
    cmd = [
        sys.executable, "-m", "tortoise_lite.serve", f"ckpt={tones_ckpt}", f"port={port}", "threads=1",
        "vocoder.n_iter=4", "vocoder.nnls_iters=4", f"work_dir={work / 'requests'}", "max_chars=200",
    ]  # fmt: skip
    env = subprocess_env()
    env["GRADIO_TEMP_DIR"] = str(work / "gradio")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not answer in 180 s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    yield url, proc, log
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the server; every request to another host is blocked and counted."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    outside: list[str] = []

    def guard(route):
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    pg.route("**/*", guard)
    pg.set_default_timeout(WAIT_MS)
    pg.goto(server[0])
    pg.wait_for_selector("#synthesize")
    yield pg
    context.close()
    assert not outside, f"the page asked for things outside this machine: {outside[:5]}"


@pytest.fixture(scope="module")
def mel_spec(tones_ckpt):
    from tortoise_lite.api import load_checkpoint

    return load_checkpoint(tones_ckpt)[0].mel_spec


def synthesize(pg, text: str, seed: int | None = None) -> None:
    pg.locator("#text textarea").fill(text)
    if seed is not None:
        pg.locator("#seed input").fill(str(seed))
    pg.locator("#synthesize").click()


def wait_audio(pg, elem: str = "#audio") -> str:
    """The audio element's source once the request finished (the summary is filled with it)."""
    pg.wait_for_function(
        "([a, s]) => { const el = document.querySelector(a + ' audio');"
        " const m = document.querySelector(s);"
        " return el && el.src && m && m.innerText.includes('mel frames'); }",
        arg=[elem, elem.replace("#audio", "#summary")],
    )
    return pg.locator(f"{elem} audio").first.get_attribute("src")


def summary_numbers(pg, elem: str = "#summary") -> dict[str, int]:
    text = pg.locator(elem).inner_text()
    frames = re.search(r"mel frames\s+(\d+)", text)
    audio = re.search(r"(\d+) samples at (\d+) Hz", text)
    assert frames and audio, text
    return {
        "frames": int(frames.group(1)),
        "samples": int(audio.group(1)),
        "sample_rate": int(audio.group(2)),
    }


def check_images_loaded(pg, suffix: str = "") -> None:
    for key in ("mel", "strip", "bands"):
        sel = f"#{key}{suffix} img"
        pg.wait_for_function(
            "s => { const im = document.querySelector(s); return im && im.complete && im.naturalWidth > 0; }",
            arg=sel,
        )
        assert pg.locator(sel).first.evaluate("im => im.naturalHeight") > 50, sel


def check_wav(pg, src: str, mel_spec, numbers: dict[str, int]) -> None:
    import soundfile as sf

    assert re.search(r"\.wav(\?|$)", src), src
    body = pg.request.get(src).body()
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
    wav, sr = sf.read(io.BytesIO(body))
    assert sr == mel_spec.sample_rate == numbers["sample_rate"]
    # the wav is exactly the returned mel's length
    assert len(wav) == mel_spec.num_samples(numbers["frames"]) == numbers["samples"]
    return wav, sr


def test_text_to_audio_in_the_browser(page, server, mel_spec):
    synthesize(page, "C4 E4 G4 C5 E5", seed=3)
    src = wait_audio(page)
    numbers = summary_numbers(page)
    wav, sr = check_wav(page, src, mel_spec, numbers)
    # the browser decodes the same duration
    page.wait_for_function("() => document.querySelector('#audio audio').readyState >= 1")
    duration = page.locator("#audio audio").first.evaluate("el => el.duration")
    assert abs(duration - len(wav) / sr) < 2e-3, (duration, len(wav) / sr)
    check_images_loaded(page)
    with page.expect_download() as download:  # the download button hands over the same wav
        page.locator("#download").click()
    assert download.value.suggested_filename.endswith("_seed3.wav")
    assert Path(download.value.path()).read_bytes() == page.request.get(src).body()
    text = page.locator("#summary").inner_text()
    assert "real-time factor" in text and "seed 3" in text and "10 steps" in text
    assert page.locator("#status").inner_text().strip() == ""


def test_bad_requests_show_errors_and_the_server_keeps_serving(page, server, mel_spec):
    cases = [
        ("   \n ", "Error in text", "empty"),
        ("C4 hello", "Error in text", "unknown symbol"),
        ("C4 " * 80, "Error in text", "over this server's limit of 200"),
    ]
    for text, head, detail in cases:
        synthesize(page, text)
        page.wait_for_function("s => document.querySelector('#status').innerText.includes(s)", arg=detail)
        status = page.locator("#status").inner_text()
        assert head in status and detail in status, status
        assert page.locator("#audio audio").count() == 0 or not page.locator(
            "#audio audio"
        ).first.get_attribute("src")
    synthesize(page, "A3 C4 E4", seed=1)
    src = wait_audio(page)
    check_wav(page, src, mel_spec, summary_numbers(page))
    assert page.locator("#status").inner_text().strip() == ""
    assert server[1].poll() is None


def test_compare_two_step_counts_side_by_side(page, server, mel_spec):
    page.get_by_role("tab", name="Compare").click()
    page.locator("#text_compare textarea").fill("G4 B4 D5")
    page.locator("#compare").click()
    for side in ("_a", "_b"):
        src = wait_audio(page, f"#audio{side}")
        check_wav(page, src, mel_spec, summary_numbers(page, f"#summary{side}"))
        check_images_loaded(page, side)
    a, b = page.locator("#summary_a").inner_text(), page.locator("#summary_b").inner_text()
    assert "4 steps" in a and "10 steps" in b
    # same text and seed: the same length, a different sample
    assert summary_numbers(page, "#summary_a")["frames"] == summary_numbers(page, "#summary_b")["frames"]


def test_eight_concurrent_requests_all_complete(browser, server, mel_spec):
    # eight people: a browser context each (one profile would hold all eight pages' event streams on its
    # six connections per host, which says nothing about the server)
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(8)]
    try:
        pages = []
        for context in contexts:
            pg = context.new_page()
            pg.set_default_timeout(WAIT_MS)
            pg.goto(server[0])
            pg.wait_for_selector("#synthesize")
            pages.append(pg)
        t0 = time.perf_counter()
        for k, pg in enumerate(pages):  # all eight are queued before the first finishes
            synthesize(pg, "C4 D4 E4 F4", seed=100 + k)
        for k, pg in enumerate(pages):
            src = wait_audio(pg)
            check_wav(pg, src, mel_spec, summary_numbers(pg))
            assert f"seed {100 + k}" in pg.locator("#summary").inner_text()
        for pg in pages:
            check_images_loaded(pg)
        print(f"8 concurrent requests served in {time.perf_counter() - t0:.1f} s")
    finally:
        for context in contexts:
            context.close()
    assert server[1].poll() is None
    assert "Traceback" not in server[2].read_text(errors="replace")
