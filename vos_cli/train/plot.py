"""Loss and validation curves of a training log (log.jsonl) drawn to a PNG with Pillow.

Pillow is already a dependency (through imageio); a plotting library would be a heavy extra for
two line charts.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from vos_cli.errors import VosError

WIDTH, HEIGHT, MARGIN = 900, 360, 60
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def read_log(path: Path) -> tuple[list[dict], list[dict]]:
    if not path.is_file():
        raise VosError(f"training log not found: {path}")
    train, val = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise VosError(
                f"{path}:{number} is not a JSON line; is this a vos log.jsonl?"
            ) from None
        (val if record.get("type") == "val" else train).append(record)
    if not train and not val:
        raise VosError(f"{path} holds no training records")
    return train, val


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _panel(
    draw: ImageDraw.ImageDraw,
    top: int,
    title: str,
    series: list[tuple[str, list[float], list[float]]],
) -> None:
    left, right, bottom = MARGIN, WIDTH - 20, top + HEIGHT - 40
    draw.text((left, top + 5), title, fill=(0, 0, 0))
    xs_all = [x for _, xs, _ in series for x in xs]
    ys_all = [y for _, _, ys in series for y in ys]
    if not xs_all:
        draw.text((left, top + 40), "(no data)", fill=(120, 120, 120))
        return
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = min(ys_all), max(ys_all)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1e-6
    plot_top = top + 25
    draw.rectangle((left, plot_top, right, bottom), outline=(0, 0, 0))
    for frac in (0.0, 0.5, 1.0):
        y = bottom - frac * (bottom - plot_top)
        draw.text((5, y - 6), f"{y0 + frac * (y1 - y0):.3g}", fill=(0, 0, 0))
        x = left + frac * (right - left)
        draw.text((x - 10, bottom + 5), f"{x0 + frac * (x1 - x0):.0f}", fill=(0, 0, 0))
    for i, (name, xs, ys) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        points = [
            (
                left + (x - x0) / (x1 - x0) * (right - left),
                bottom - (y - y0) / (y1 - y0) * (bottom - plot_top),
            )
            for x, y in zip(xs, ys, strict=True)
        ]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for p in points if len(points) < 40 else []:
            draw.ellipse((p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2), fill=colour)
        draw.text((right - 150, plot_top + 5 + 14 * i), name, fill=colour)


def plot_log(path: Path, out: Path | None = None) -> Path:
    """Draw training loss (smoothed) and validation J&F / J / F against steps; returns the PNG."""
    path = Path(path)
    train, val = read_log(path)
    out = out or path.with_suffix(".png")
    image = Image.new("RGB", (WIDTH, 2 * HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    steps = [r["step"] for r in train]
    window = max(1, len(train) // 50)
    _panel(
        draw,
        0,
        f"training loss (moving average of {window} logged steps) vs step",
        [
            ("loss", steps, _smooth([r["loss"] for r in train], window)),
            ("fine", steps, _smooth([r.get("fine", r["loss"]) for r in train], window)),
        ],
    )
    vsteps = [r["step"] for r in val]
    _panel(
        draw,
        HEIGHT,
        "validation vs step",
        [(key, vsteps, [r[key] for r in val]) for key in ("jf", "j", "f") if val and key in val[0]],
    )
    image.save(out)
    return out
