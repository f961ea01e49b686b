"""Prompts for the mask maker: boxes and clicks, parsed, validated and grouped into objects.

Coordinates are pixels of the frame, x to the right and y down, as in SAM 2: a box is
``X0,Y0,X1,Y1`` (its left, top, right and bottom edges, X0 < X1, Y0 < Y1), a click ``X,Y``. Every
problem is a :class:`~vos_cli.errors.VosError` with a one-line message that names the option, so
the command line prints ``error: ...`` and exits 2.

On the command line a ``--point`` or ``--bg-point`` belongs to the last ``--box`` given before it;
clicks with no box before them make an object of their own; ``--point N:X,Y`` names the object
(1 = the first) explicitly. Click parses repeated options into one list per option, which loses
their order across options, so :func:`group_prompts` takes the options in command-line order
(see :func:`ordered_prompt_options`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vos_cli.errors import VosError

__all__ = [
    "Box",
    "ObjectPrompt",
    "Point",
    "PROMPT_OPTIONS",
    "check_prompts",
    "group_prompts",
    "ordered_prompt_options",
]

#: The command-line options that carry prompts, in the (kind, option) form group_prompts reads.
PROMPT_OPTIONS = ("--box", "--point", "--bg-point")


def _numbers(text: str, count: int, option: str, form: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != count:
        raise VosError(f"{option} takes {form} ({count} numbers separated by commas), got {text!r}")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise VosError(f"{option} takes {form} (numbers), got {text!r}") from None
        if not math.isfinite(value):
            raise VosError(f"{option} takes {form} (finite numbers), got {text!r}")
        values.append(value)
    return values


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in frame pixels: left ``x0``, top ``y0``, right ``x1``, bottom ``y1``."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def parse(cls, text: str, option: str = "--box") -> Box:
        """``"X0,Y0,X1,Y1"`` -> Box; VosError unless X0 < X1 and Y0 < Y1."""
        box = cls(*_numbers(text, 4, option, "X0,Y0,X1,Y1"))
        if box.x0 >= box.x1 or box.y0 >= box.y1:
            raise VosError(
                f"{option} {text}: need X0 < X1 and Y0 < Y1 (left, top, right, bottom edges)"
            )
        return box

    def check(self, width: int, height: int, option: str = "--box") -> None:
        """VosError when the box is empty or not inside a ``width`` x ``height`` frame."""
        if self.x0 >= self.x1 or self.y0 >= self.y1:
            raise VosError(f"{option} {self}: need X0 < X1 and Y0 < Y1")
        if self.x0 < 0 or self.y0 < 0 or self.x1 > width or self.y1 > height:
            raise VosError(
                f"{option} {self} is outside the {width}x{height} frame (x from 0 to {width}, "
                f"y from 0 to {height})"
            )

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def __str__(self) -> str:
        return ",".join(_fmt(v) for v in (self.x0, self.y0, self.x1, self.y1))


@dataclass(frozen=True)
class Point:
    """A click at pixel ``(x, y)``: on the object (``positive``) or on what must stay out."""

    x: float
    y: float
    positive: bool = True

    @classmethod
    def parse(cls, text: str, positive: bool = True, option: str | None = None) -> Point:
        """``"X,Y"`` -> Point (an object index ``N:`` must be split off first)."""
        option = option or ("--point" if positive else "--bg-point")
        x, y = _numbers(text, 2, option, "X,Y")
        return cls(x, y, positive)

    def check(self, width: int, height: int) -> None:
        """VosError when the click is not inside a ``width`` x ``height`` frame."""
        if not (0 <= self.x < width and 0 <= self.y < height):
            option = "--point" if self.positive else "--bg-point"
            raise VosError(
                f"{option} {self} is outside the {width}x{height} frame (x from 0 to "
                f"{width - 1}, y from 0 to {height - 1})"
            )

    def __str__(self) -> str:
        return f"{_fmt(self.x)},{_fmt(self.y)}"


@dataclass
class ObjectPrompt:
    """What points at one object: a box, clicks, or both (at least a box or a positive click)."""

    box: Box | None = None
    points: list[Point] = field(default_factory=list)

    def check(self, width: int, height: int, number: int = 1) -> None:
        """VosError for a prompt outside the frame or one that names no object."""
        if self.box is not None:
            self.box.check(width, height)
        for point in self.points:
            point.check(width, height)
        if self.box is None and not any(p.positive for p in self.points):
            raise VosError(
                f"object {number} has only --bg-point clicks: give a --box or a --point on it"
            )


def check_prompts(objects: Sequence[ObjectPrompt], width: int, height: int) -> None:
    """Check every object's prompt against the frame; VosError when there is no object at all."""
    if not objects:
        raise VosError("no object given: pass --box X0,Y0,X1,Y1 or --point X,Y")
    if len(objects) > 254:
        raise VosError(f"{len(objects)} objects given; a mask holds at most 254")
    for number, prompt in enumerate(objects, 1):
        prompt.check(width, height, number)


def _split_index(text: str, option: str) -> tuple[int | None, str]:
    head, sep, tail = text.partition(":")
    if not sep:
        return None, text
    if not head.strip().isdigit() or int(head) < 1:
        raise VosError(
            f"{option} takes X,Y or N:X,Y with N the object (1 = the first), got {text!r}"
        )
    return int(head), tail


def group_prompts(options: Iterable[tuple[str, str]]) -> list[ObjectPrompt]:
    """Objects from prompt options in command-line order, e.g. ``[("--box", "1,2,30,40")]``.

    A ``--box`` starts the next object; an unindexed ``--point`` / ``--bg-point`` refines the
    object of the last box before it, or, before any box, one object made of clicks alone (the
    first object); ``N:X,Y`` adds the click to object N. Does not check against a frame size
    (:func:`check_prompts` does).
    """
    objects: list[ObjectPrompt] = []
    clicks_only: ObjectPrompt | None = None
    indexed: list[tuple[int, Point, str]] = []
    current: ObjectPrompt | None = None
    for option, value in options:
        if option == "--box":
            current = ObjectPrompt(Box.parse(value))
            objects.append(current)
        elif option in ("--point", "--bg-point"):
            index, rest = _split_index(value, option)
            point = Point.parse(rest, positive=option == "--point", option=option)
            if index is not None:
                indexed.append((index, point, value))
            elif current is not None:
                current.points.append(point)
            else:
                if clicks_only is None:
                    clicks_only = ObjectPrompt()
                clicks_only.points.append(point)
        else:
            raise ValueError(f"not a prompt option: {option}")
    if clicks_only is not None:
        objects.insert(0, clicks_only)
    for index, point, value in indexed:
        if index > len(objects):
            option = "--point" if point.positive else "--bg-point"
            raise VosError(
                f"{option} {value}: there is no object {index} (given: {len(objects)})"
                if objects
                else f"{option} {value}: there is no object {index}; give its --box first"
            )
        objects[index - 1].points.append(point)
    return objects


def ordered_prompt_options(
    raw_args: Sequence[str] | None,
    boxes: Sequence[str],
    points: Sequence[str],
    bg_points: Sequence[str],
) -> list[tuple[str, str]]:
    """The prompt options in the order they were typed.

    ``raw_args``: the command's arguments as given (``--box A`` or ``--box=A``); ``boxes``,
    ``points``, ``bg_points``: what click parsed for each option. When the raw arguments do not
    account for exactly the parsed values (a caller that passes no raw arguments), the order is
    boxes first, each point after the boxes: clicks then refine the last box, as with one box.
    """
    parsed = {"--box": list(boxes), "--point": list(points), "--bg-point": list(bg_points)}
    found: list[tuple[str, str]] = []
    args = list(raw_args or [])
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name in parsed:
            if eq:
                found.append((name, value))
            elif i + 1 < len(args):
                found.append((name, args[i + 1]))
                i += 1
        i += 1
    if all([v for o, v in found if o == name] == parsed[name] for name in parsed):
        return found
    return [(name, value) for name in PROMPT_OPTIONS for value in parsed[name]]
