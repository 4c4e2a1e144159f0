"""Redraws README's screenshots (docs/screenshots/*.png) from a real server in Chromium.

    .venv/bin/python docs/screenshots.py --data ../shared/datasets/cifar10-jpeg --runs runs

- classify.png: the shipped model answering three pictures drawn here (an aeroplane, a ship,
  a car), so no dataset image reaches the repository;
- evaluate.png: the shipped model on the validation split of --data, cut above the image
  gallery for the same reason (metrics and the confusion matrix only);
- train.png: the Train page's live view of the newest run in --runs (curves, learning rate).

The server gets its own empty cache folder; nothing is written outside --out but that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import (  # noqa: E402  (the repository root is on the path above)
    CHROMIUM,
    CHROMIUM_FLAGS,
    streamlit_server,
    wait_idle,
)

SIZE = 160


def _sky(top: tuple, bottom: tuple, horizon: int = SIZE) -> Image.Image:
    """A vertical gradient from `top` to `bottom` over the first `horizon` rows."""
    image = Image.new("RGB", (SIZE, SIZE), bottom)
    draw = ImageDraw.Draw(image)
    for y in range(horizon):
        t = y / max(horizon - 1, 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (SIZE, y)], colour)
    return image


def aeroplane() -> Image.Image:
    image = _sky((70, 130, 200), (170, 205, 235))
    d = ImageDraw.Draw(image)
    d.polygon([(70, 78), (30, 120), (48, 122), (96, 82)], fill=(150, 155, 165))  # wing
    d.ellipse([(18, 66), (142, 90)], fill=(225, 228, 232))  # fuselage
    d.polygon([(24, 76), (14, 46), (30, 46), (46, 74)], fill=(205, 40, 45))  # tail fin
    d.polygon([(80, 74), (56, 40), (72, 40), (104, 72)], fill=(190, 195, 205))  # far wing
    for x in range(62, 132, 9):
        d.ellipse([(x, 72), (x + 4, 76)], fill=(60, 70, 90))  # windows
    return image


def ship() -> Image.Image:
    image = _sky((120, 165, 215), (200, 220, 235), horizon=100)
    d = ImageDraw.Draw(image)
    d.rectangle([(0, 100), (SIZE, SIZE)], fill=(35, 70, 120))  # sea
    d.polygon([(14, 92), (150, 92), (136, 116), (26, 116)], fill=(55, 58, 66))  # hull
    d.rectangle([(46, 70), (120, 92)], fill=(235, 235, 235))  # superstructure
    d.rectangle([(62, 56), (100, 70)], fill=(225, 225, 225))
    d.rectangle([(104, 44), (116, 70)], fill=(200, 50, 40))  # funnel
    return image


def car() -> Image.Image:
    image = _sky((150, 180, 200), (110, 140, 90), horizon=110)
    d = ImageDraw.Draw(image)
    d.rectangle([(0, 110), (SIZE, SIZE)], fill=(95, 95, 100))  # road
    d.rounded_rectangle([(16, 78), (146, 118)], radius=10, fill=(190, 25, 30))  # body
    d.polygon([(44, 80), (60, 54), (112, 54), (128, 80)], fill=(170, 20, 25))  # cabin
    d.polygon([(52, 78), (64, 59), (84, 59), (84, 78)], fill=(150, 190, 215))  # windows
    d.polygon([(90, 78), (90, 59), (108, 59), (120, 78)], fill=(150, 190, 215))
    for x in (30, 106):
        d.ellipse([(x, 104), (x + 28, 132)], fill=(20, 20, 20))  # wheels
        d.ellipse([(x + 8, 112), (x + 20, 124)], fill=(160, 160, 165))
    return image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a class-folder tree (Evaluate's data)")
    parser.add_argument("--runs", required=True, help="a runs folder; Train shows its newest")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        pictures = []
        for name, draw in (("aeroplane", aeroplane), ("ship", ship), ("car", car)):
            pictures.append(base / f"{name}.png")
            draw().save(pictures[-1])
        env = {
            "CNN_RUNS_DIR": str(Path(args.runs).resolve()),
            "CNN_CACHE_DIR": str(base / "cache"),
            "CNN_DATA": str(Path(args.data).resolve()),
        }
        with streamlit_server({"env": env, "base": base}) as url, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)  # the first Evaluate classifies 5,000 images

            page.goto(f"{url}/classify")
            wait_idle(page)
            uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
            uploader.set_input_files([str(p) for p in pictures])
            # The upload reruns the script more than once: wait for the last run's table.
            page.get_by_text("All results").wait_for()
            wait_idle(page, timeout=300_000)
            page.screenshot(path=str(out / "classify.png"), full_page=True)

            page.goto(f"{url}/evaluate")
            wait_idle(page, timeout=600_000)
            # Everything above the gallery of validation images: it ends at this caption.
            caption = page.get_by_text("Select a cell to see its images")
            bottom = caption.bounding_box()
            page.screenshot(
                path=str(out / "evaluate.png"),
                full_page=True,
                clip={"x": 0, "y": 0, "width": 1400, "height": bottom["y"] + bottom["height"]},
            )

            page.goto(f"{url}/train")
            wait_idle(page)
            # The live view: its curves and the learning rate, down to the New run form.
            form = page.get_by_role("heading", name="New run").bounding_box()
            page.screenshot(
                path=str(out / "train.png"),
                full_page=True,
                clip={"x": 0, "y": 0, "width": 1400, "height": form["y"] - 10},
            )
            browser.close()
    print(f"wrote {', '.join(p.name for p in sorted(out.glob('*.png')))} in {out}")


if __name__ == "__main__":
    main()
