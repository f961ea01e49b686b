"""Boxes and clicks: parsing, checks against the frame, grouping into objects, argv order."""

from __future__ import annotations

import pytest

from vos_cli.errors import VosError
from vos_cli.prompts.types import (
    Box,
    ObjectPrompt,
    Point,
    check_prompts,
    group_prompts,
    ordered_prompt_options,
)


def test_box_parses_and_checks():
    box = Box.parse("10, 20,30.5,40")
    assert box == Box(10, 20, 30.5, 40)
    assert (box.width, box.height) == (20.5, 20)
    assert str(box) == "10,20,30.5,40"
    box.check(31, 40)  # touching the right and bottom edges is inside


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,2,3", "--box takes X0,Y0,X1,Y1 (4 numbers"),
        ("1,2,3,x", "--box takes X0,Y0,X1,Y1 (numbers)"),
        ("1,2,3,nan", "finite"),
        ("30,2,10,40", "need X0 < X1 and Y0 < Y1"),
        ("1,40,30,40", "need X0 < X1 and Y0 < Y1"),
    ],
)
def test_bad_boxes(text, message):
    with pytest.raises(VosError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Box.parse(text)


@pytest.mark.parametrize("box", [Box(-1, 0, 10, 10), Box(0, 0, 97, 10), Box(0, 0, 10, 65)])
def test_box_outside_the_frame(box):
    with pytest.raises(VosError, match=r"outside the 96x64 frame"):
        box.check(96, 64)


def test_points():
    assert Point.parse("3,4") == Point(3, 4, True)
    assert Point.parse("3,4", positive=False) == Point(3, 4, False)
    Point(95, 63).check(96, 64)
    with pytest.raises(VosError, match=r"--point 96,0 is outside the 96x64 frame"):
        Point(96, 0).check(96, 64)
    with pytest.raises(VosError, match=r"--bg-point -1,0 is outside"):
        Point(-1, 0, False).check(96, 64)
    with pytest.raises(VosError, match=r"--point takes X,Y"):
        Point.parse("3")


def test_points_refine_the_last_box_before_them():
    objects = group_prompts(
        [
            ("--box", "0,0,10,10"),
            ("--point", "1,1"),
            ("--box", "20,20,30,30"),
            ("--bg-point", "25,25"),
            ("--point", "26,26"),
        ]
    )
    assert objects == [
        ObjectPrompt(Box(0, 0, 10, 10), [Point(1, 1)]),
        ObjectPrompt(Box(20, 20, 30, 30), [Point(25, 25, False), Point(26, 26)]),
    ]


def test_clicks_alone_make_an_object_and_indices_name_objects():
    assert group_prompts([("--point", "5,5"), ("--bg-point", "6,6")]) == [
        ObjectPrompt(None, [Point(5, 5), Point(6, 6, False)])
    ]
    objects = group_prompts(
        [("--box", "0,0,10,10"), ("--box", "20,20,30,30"), ("--point", "1:2,2")]
    )
    assert objects[0].points == [Point(2, 2)] and objects[1].points == []
    with pytest.raises(VosError, match="there is no object 3"):
        group_prompts([("--box", "0,0,10,10"), ("--point", "3:2,2")])
    with pytest.raises(VosError, match="N:X,Y"):
        group_prompts([("--box", "0,0,10,10"), ("--point", "x:2,2")])


def test_check_prompts():
    with pytest.raises(VosError, match="no object given"):
        check_prompts([], 96, 64)
    with pytest.raises(VosError, match="object 1 has only --bg-point clicks"):
        check_prompts([ObjectPrompt(None, [Point(1, 1, False)])], 96, 64)
    check_prompts([ObjectPrompt(None, [Point(1, 1)])], 96, 64)


def test_order_is_recovered_from_the_raw_arguments():
    raw = [
        "in.mp4",
        "--point",
        "9,9",
        "--box=0,0,10,10",
        "--bg-point",
        "2,2",
        "--box",
        "1,1,5,5",
        "--out",
        "m.png",
        "--point",
        "3,3",
    ]
    options = ordered_prompt_options(raw, ["0,0,10,10", "1,1,5,5"], ["9,9", "3,3"], ["2,2"])
    assert options == [
        ("--point", "9,9"),
        ("--box", "0,0,10,10"),
        ("--bg-point", "2,2"),
        ("--box", "1,1,5,5"),
        ("--point", "3,3"),
    ]
    objects = group_prompts(options)
    assert [o.box for o in objects] == [None, Box(0, 0, 10, 10), Box(1, 1, 5, 5)]
    assert [o.points for o in objects] == [[Point(9, 9)], [Point(2, 2, False)], [Point(3, 3)]]


def test_without_raw_arguments_clicks_go_to_the_last_box():
    options = ordered_prompt_options(None, ["0,0,10,10", "1,1,5,5"], ["3,3"], [])
    assert group_prompts(options)[1].points == [Point(3, 3)]
