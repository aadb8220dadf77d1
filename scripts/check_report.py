#!/usr/bin/env python
"""Render an sftscope HTML report in headless Chromium: take a screenshot and check every figure loaded.

    python scripts/check_report.py REPORT.html [--screenshot shot.png] [--width 1400 --height 2400]

Exit status 0 when the page rendered and every <img> decoded (the report's inline script writes the counts
into <body data-images-loaded=.. data-images-total=..>, read back from the DOM Chromium dumps); 1 otherwise.
Chromium runs with networking-related background services off and a throwaway profile.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=10000"]


def find_chromium() -> str | None:
    """Path of a Chromium-like browser: $CHROMIUM, else the first of CANDIDATES on PATH."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).exists():
        return env
    return next((shutil.which(c) for c in CANDIDATES if shutil.which(c)), None)


def _run(browser: str, args: list[str], timeout: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="sftscope-chromium-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def image_counts(dom: str) -> tuple[int, int]:
    """(loaded, total) images as the report's script recorded them on <body>; (-1, -1) if absent."""
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    return (int(loaded.group(1)), int(total.group(1))) if loaded and total else (-1, -1)


def check_report(report: str | Path, screenshot: str | Path | None = None, width: int = 1400, height: int = 2400,
                 browser: str | None = None, timeout: int = 120) -> dict:
    """Dump the rendered DOM (and a screenshot if asked); returns loaded/total image counts and the paths."""
    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found: apt-get install -y chromium (or set $CHROMIUM)")
    url = Path(report).resolve().as_uri()
    dom = _run(browser, ["--dump-dom", url], timeout)
    loaded, total = image_counts(dom.stdout)
    result = {"loaded": loaded, "total": total, "dom_chars": len(dom.stdout), "returncode": dom.returncode,
              "stderr_tail": dom.stderr[-2000:]}
    if screenshot is not None:
        shot = _run(browser, [f"--screenshot={Path(screenshot).resolve()}", f"--window-size={width},{height}", url],
                    timeout)
        result["screenshot"] = str(screenshot) if Path(screenshot).exists() else None
        result["screenshot_returncode"] = shot.returncode
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--screenshot", default=None)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args(argv)
    result = check_report(args.report, args.screenshot, args.width, args.height)
    ok = result["total"] > 0 and result["loaded"] == result["total"]
    print(f"images loaded: {result['loaded']} of {result['total']}"
          + (f"; screenshot: {result.get('screenshot')}" if args.screenshot else ""))
    if not ok:
        print(result["stderr_tail"], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
