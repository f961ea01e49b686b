"""Loss and validation curves of a training log (log.jsonl) drawn to a PNG with matplotlib.

matplotlib is an optional extra (``pip install ".[plot]"``): nothing else in vos needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vos_cli.errors import VosError, WriteError


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


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise VosError(
            'plotting needs matplotlib, an optional extra: pip install "vos-cli[plot]" '
            '(or pip install ".[plot]" in a clone)'
        ) from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _panel(axes: Any, title: str, series: list[tuple[str, list[float], list[float]]]) -> None:
    axes.set_title(title, loc="left", fontsize=10)
    axes.set_xlabel("step")
    if not any(xs for _, xs, _ in series):
        axes.text(0.5, 0.5, "(no data)", transform=axes.transAxes, ha="center", color="grey")
        return
    for name, xs, ys in series:
        axes.plot(xs, ys, label=name, marker="o" if len(xs) < 40 else None, markersize=3)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")


def plot_log(path: Path, out: Path | None = None) -> Path:
    """Draw training loss (smoothed) and validation J&F / J / F against steps; returns the PNG."""
    path = Path(path)
    train, val = read_log(path)
    plt = _pyplot()
    out = out or path.with_suffix(".png")
    steps = [r["step"] for r in train]
    window = max(1, len(train) // 50)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7.2), constrained_layout=True)
    _panel(
        top,
        f"training loss (moving average of {window} logged steps)",
        [
            ("loss", steps, _smooth([r["loss"] for r in train], window)),
            ("fine", steps, _smooth([r.get("fine", r["loss"]) for r in train], window)),
        ],
    )
    vsteps = [r["step"] for r in val]
    _panel(
        bottom,
        "validation",
        [(key, vsteps, [r[key] for r in val]) for key in ("jf", "j", "f") if val and key in val[0]],
    )
    try:
        figure.savefig(out, dpi=100)
    except OSError as exc:
        raise WriteError(f"Cannot write {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)
    return out
