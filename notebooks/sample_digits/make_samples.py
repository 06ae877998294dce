"""Draw the sample "photos" of handwritten digits the notebooks read.

They are made here, from pen strokes with a random wobble and slant on paper with grain,
ruled or squared lines, uneven light and JPEG compression, so the repository carries no
one's handwriting and no licence question. Re-run to regenerate:

    python notebooks/sample_digits/make_samples.py
"""

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).parent


def paper(h: int, w: int, rng: np.random.Generator, lines: str) -> np.ndarray:
    """(h, w, 3) uint8 off-white paper with grain and ruled or squared lines."""
    page = np.full((h, w, 3), (236, 240, 243), np.float32)
    page += rng.normal(0, 3, (h, w, 1))
    colour = (205, 170, 140)  # BGR: pale blue ink of printed rules
    if lines in ("ruled", "squared"):
        for y in range(30, h, 42):
            cv2.line(page, (0, y), (w, y), colour, 2)
    if lines == "squared":
        for x in range(20, w, 42):
            cv2.line(page, (x, 0), (x, h), colour, 2)
    return page


# Pen strokes of each digit in a unit box (x right, y down), as a hand writes them.
STROKES = {
    "0": [
        [
            (0.5, 0.0),
            (0.15, 0.2),
            (0.1, 0.6),
            (0.45, 1.0),
            (0.85, 0.75),
            (0.9, 0.3),
            (0.6, 0.0),
            (0.45, 0.05),
        ]
    ],
    "2": [[(0.1, 0.25), (0.4, 0.0), (0.8, 0.1), (0.8, 0.4), (0.1, 1.0), (0.95, 0.98)]],
    "3": [
        [
            (0.15, 0.15),
            (0.5, 0.0),
            (0.85, 0.15),
            (0.8, 0.4),
            (0.45, 0.5),
            (0.85, 0.6),
            (0.9, 0.85),
            (0.5, 1.0),
            (0.1, 0.85),
        ]
    ],
    "4": [[(0.55, 0.0), (0.1, 0.65), (0.95, 0.65)], [(0.7, 0.3), (0.65, 1.0)]],
    "5": [
        [
            (0.85, 0.0),
            (0.25, 0.02),
            (0.2, 0.45),
            (0.6, 0.38),
            (0.9, 0.62),
            (0.8, 0.95),
            (0.4, 1.0),
            (0.1, 0.85),
        ]
    ],
    "7": [[(0.05, 0.05), (0.9, 0.0), (0.35, 1.0)], [(0.3, 0.5), (0.8, 0.48)]],
}


def smooth(points: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Chaikin's corner cutting: a polyline becomes a smooth curve, ends kept."""
    for _ in range(rounds):
        a, b = points[:-1], points[1:]
        cut = np.stack([0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b], axis=1)
        points = np.concatenate([points[:1], cut.reshape(-1, 2), points[-1:]])
    return points


def write(page: np.ndarray, text: str, rng: np.random.Generator) -> np.ndarray:
    """Write ``text`` in dark ballpoint across the middle of ``page``, slanted and
    wobbly, each digit in a box of about half the page's height."""
    h, w = page.shape[:2]
    box = h * 0.45
    ink = np.zeros((h, w), np.uint8)
    x0 = (w - box * 0.8 * len(text)) / 2
    slant = rng.uniform(0.1, 0.3)
    for i, digit in enumerate(text):
        left = x0 + i * box * 0.8 + rng.normal(0, box * 0.03)
        top = (h - box) / 2 + rng.normal(0, box * 0.04)
        for stroke in STROKES[digit]:
            unit = np.array(stroke) + rng.normal(0, 0.025, (len(stroke), 2))
            unit[:, 0] = unit[:, 0] * 0.6 + slant * (1 - unit[:, 1])
            curve = smooth(unit) * box + (left, top)
            cv2.polylines(
                ink,
                [np.round(curve * 4).astype(np.int32)],
                False,
                255,
                thickness=max(3, h // 50),
                lineType=cv2.LINE_AA,
                shift=2,
            )
    # A pen presses unevenly: smooth noise modulates the stroke darkness.
    noise = rng.uniform(0.6, 1.0, (h, w)).astype(np.float32)
    pressure = cv2.GaussianBlur(noise, (0, 0), 9)
    ink = cv2.GaussianBlur(ink.astype(np.float32) / 255, (0, 0), 1.0) * pressure
    pen = np.array((90, 50, 40), np.float32)  # BGR: dark blue ballpoint
    return page * (1 - ink[..., None]) + pen * ink[..., None]


def light(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uneven light: a gradient and a soft shadow from one corner."""
    h, w = page.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gradient = 0.8 + 0.25 * (xx / w) + rng.uniform(-0.05, 0.05)
    shadow = 1 - 0.3 * np.exp(-((xx / w) ** 2 + (1 - yy / h) ** 2) / 0.15)
    return page * (gradient * shadow)[..., None]


def save(page: np.ndarray, name: str) -> None:
    image = np.clip(page, 0, 255).astype(np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if name.endswith(".jpg") else []
    cv2.imwrite(str(HERE / name), image, params)


def main() -> None:
    rng = np.random.default_rng(2026)
    samples = [
        ("seven.jpg", "7", (360, 300), "ruled"),
        ("three_squared.jpg", "3", (320, 320), "squared"),
        ("number_405.jpg", "405", (300, 640), "plain"),
    ]
    for name, text, (h, w), lines in samples:
        save(light(write(paper(h, w, rng, lines), text, rng), rng), name)


if __name__ == "__main__":
    main()
