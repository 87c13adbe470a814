"""Build the documentation as CI does, check the HTML, and take screenshots where Chromium is.

Usage: ``.venv/bin/python docs/build.py [--no-screenshots]`` (with the ``docs`` extra installed).

1. ``sphinx-build -W --keep-going -q -b html docs docs/_build/html`` from scratch, as ``.ci/run``;
2. ``docs/check_html.py``: every formula MathML, no raw TeX, nothing from a CDN;
3. only where ``/usr/bin/chromium`` exists (Debian's ``chromium`` package): headless screenshots
   of the index, a page of maths, the porting guide's table and the API contents list into
   ``docs/_static/screenshots/*.png``, to look at what a reader sees. With Pillow installed they
   are reduced to a palette of colours, which keeps each file small.

CI runs steps 1 and 2 and takes no screenshots.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
HTML = DOCS / "_build" / "html"
SHOTS = DOCS / "_static" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# (file name, page and anchor): what each screenshot shows.
PAGES = [
    ("index.png", "index.html"),  # the first code sample, no sideways scroll
    ("maths.png", "instance_metrics.html#panoptic-quality"),  # displayed and inline formulas
    ("porting_table.png", "porting.html#monai"),  # table code broken after "_" and ","
    ("api_contents.png", "api/metrics.html"),  # the contents list, formulas of docstrings
]
WINDOW = (1280, 1600)


def build() -> None:
    """Run Sphinx as CI does, from scratch; exit with its status on failure."""
    # A fresh build: changes to docs/_ext or conf.py reach every page.
    shutil.rmtree(HTML, ignore_errors=True)
    start = time.monotonic()
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    result = subprocess.run([*command, str(DOCS), str(HTML)], check=False)
    if result.returncode:
        sys.exit(result.returncode)
    print(f"build: docs built in {time.monotonic() - start:.1f} s")


def check() -> None:
    """Run the HTML check; exit with its status on failure."""
    result = subprocess.run([sys.executable, str(DOCS / "check_html.py"), str(HTML)], check=False)
    if result.returncode:
        sys.exit(result.returncode)


def screenshot(page: str, out: Path, scratch: Path) -> None:
    """Take a screenshot of ``page`` (``file.html#anchor``) in headless Chromium into ``out``.

    Headless Chromium paints nothing when the page itself scrolls to an anchor, so the page is
    shown in a frame the size of the window, and the frame scrolls.
    """
    width, height = WINDOW
    frame = scratch / "frame.html"
    frame.write_text(
        '<!DOCTYPE html><html><body style="margin:0">'
        f'<iframe src="{(HTML / page.split("#")[0]).as_uri()}#{page.partition("#")[2]}" '
        f'style="display:block;border:0;width:{width}px;height:{height}px"></iframe>'
        "</body></html>",
        encoding="utf-8",
    )
    profile = tempfile.mkdtemp(dir=scratch)
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--screenshot={out}",
        f"--window-size={width},{height}",
        frame.as_uri(),
    ]
    subprocess.run(command, check=True, timeout=120, capture_output=True)
    if not out.exists():
        sys.exit(f"build: Chromium wrote no screenshot of {page}")


def shrink(path: Path) -> None:
    """Reduce a screenshot to 128 colours (no dithering: text stays crisp), if Pillow is there."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def screenshots() -> None:
    """Screenshots of ``PAGES`` into ``docs/_static/screenshots``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name, page in PAGES:
            out = SHOTS / name
            screenshot(page, out, Path(scratch))
            shrink(out)
            print(
                f"build: {out.relative_to(DOCS.parent)} ({out.stat().st_size // 1024} KB): {page}"
            )


def main(argv: list[str]) -> int:
    build()
    check()
    if "--no-screenshots" in argv:
        return 0
    if not CHROMIUM.exists():
        print(f"build: no screenshots ({CHROMIUM} not found: apt-get install chromium)")
        return 0
    shutil.rmtree(SHOTS, ignore_errors=True)
    screenshots()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
