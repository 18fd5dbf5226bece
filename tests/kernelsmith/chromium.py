"""Pages rendered by headless Chromium (Debian's chromium): the DOM it built and a screenshot, and checks
on what the screenshot shows."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)


def render(page: Path, tmp_path: Path, height: int) -> tuple[str, Image.Image]:
    """The DOM Chromium built from the page, and a screenshot of it 1200 pixels wide."""
    if CHROMIUM is None:
        pytest.skip("no Chromium: install Debian's chromium (apt-get install -y chromium), as .ci/run does")
    shot = tmp_path / "screenshot.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size=1200,{height}", f"--screenshot={shot}",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    return done.stdout, Image.open(shot).convert("RGB")


def assert_not_blank(screenshot: Image.Image) -> None:
    stat = ImageStat.Stat(screenshot.convert("L"))
    assert stat.stddev[0] > 8, f"the screenshot is nearly uniform (stddev {stat.stddev[0]:.1f})"
    assert stat.mean[0] < 250, "the screenshot is nearly all white"


def count_colour(screenshot: Image.Image, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    """Pixels within `tolerance` of `colour` in every channel."""
    return sum(count for count, pixel in screenshot.getcolors(maxcolors=1 << 24)
               if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)))


def embedded_images(page: str) -> list[Image.Image]:
    found = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]
