"""Screenshot of the web page after a real synthesis, and the time from request to audio in a real browser.

    python docs/serve_screenshot.py --ckpt outputs/speech/checkpoints/last.ckpt [--vocoder-ckpt PATH]
        [--text "..."] [--threads 2] [--repeats 3] [--out docs/serve.png]

Starts ``python -m tortoise_lite.serve`` on a free loopback port, opens the page in Debian's chromium with
Playwright, presses Synthesize ``--repeats`` times (the first includes warm-up) and prints, per request, the
time from the click to the audio element holding its wav, then saves a full-page PNG.
Needs ``pip install -e ".[web,browser-tests]"`` and ``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--vocoder-ckpt", default=None)
    ap.add_argument("--text", default=None, help="default: the page's example text")
    ap.add_argument("--speaker", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).with_name("serve.png")))
    ap.add_argument("--chromium", default=os.environ.get("TORTOISE_LITE_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--width", type=int, default=1400)
    a = ap.parse_args()

    from playwright.sync_api import sync_playwright

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "tortoise_lite.serve",
        f"ckpt={a.ckpt}",
        f"port={port}",
        f"threads={a.threads}",
    ]
    if a.vocoder_ckpt:
        cmd.append(f"vocoder_ckpt={a.vocoder_ckpt}")
    server = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                print(f"server exited with {server.returncode}", file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=a.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": a.width, "height": 1000})
            page.set_default_timeout(300_000)
            page.goto(url)
            page.wait_for_selector("#synthesize")
            if a.text:
                page.locator("#text textarea").fill(a.text)
            if a.speaker:
                page.locator("#speaker input").fill(a.speaker)
                page.keyboard.press("Enter")
            times = []
            for k in range(a.repeats):
                page.locator("#seed input").fill(str(k))
                t0 = time.perf_counter()
                page.locator("#synthesize").click()
                page.wait_for_function(
                    "s => { const el = document.querySelector('#audio audio');"
                    " return el && el.src && el.src.includes(s); }",
                    arg=f"seed{k}.wav",
                )
                times.append(time.perf_counter() - t0)
                page.wait_for_function(  # this request's figures are drawn too
                    "k => { const t = document.querySelector('#summary').innerText;"
                    " return new RegExp('seed ' + k + '\\\\b').test(t) && t.includes('after the audio'); }",
                    arg=str(k),
                )
                summary = page.locator("#summary").inner_text()
                audio = re.search(r"audio\s+([\d.]+) s", summary)
                server_t = re.search(r"request to audio\s+([\d.]+) s", summary)
                rtf = re.search(r"real-time factor\s+([\d.]+)", summary)
                print(
                    f"request {k}: click to audio {times[-1]:.2f} s in the browser; server: request to audio "
                    f"{server_t.group(1) if server_t else '?'} s, RTF {rtf.group(1) if rtf else '?'}, "
                    f"{audio.group(1) if audio else '?'} s of audio"
                )
            for sel in ("#mel img", "#strip img", "#bands img"):
                page.wait_for_function(
                    "s => { const im = document.querySelector(s); return im && im.complete && im.naturalWidth > 0; }",
                    arg=sel,
                )
            page.screenshot(path=a.out, full_page=True)
            print(f"screenshot: {a.out}; click to audio, best of {len(times)}: {min(times):.2f} s")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
