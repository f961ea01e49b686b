"""`vos bench prompts` on a tiny held-out folder, with the tiny mask maker of tests/conftest.py."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from tests.test_prompts_model import write_instances
from vos_cli.cli import app
from vos_cli.prompts.data import margin_box
from vos_cli.prompts.evaluate import box_as_mask, iou


def test_margin_box_and_box_iou():
    mask = np.zeros((60, 80), bool)
    mask[10:30, 20:60] = True  # 40 x 20
    box = margin_box(mask)
    assert (box.x0, box.y0, box.x1, box.y1) == (18, 9, 62, 31)
    assert iou(box_as_mask(box, mask.shape), mask) == 800 / (44 * 22)
    ignore = np.zeros_like(mask)
    ignore[9, :] = True
    assert iou(box_as_mask(box, mask.shape), mask, ignore) == 800 / (44 * 21)


def test_bench_prompts(tmp_path, tiny_maskmaker_path):
    root = tmp_path / "data"
    write_instances(root / "coco-extra", count=20)  # val: 2 images, one object each
    out = tmp_path / "p.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "prompts",
            "--root",
            str(root),
            "--weights",
            str(tiny_maskmaker_path),
            "--threads",
            "1",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "coco-extra" in result.output and "box itself" in result.output
    data = json.loads(out.read_text())
    assert data["count"] == 2 and len(data["ious"]) == 4
    assert 0 < data["box_iou"] <= 1 and 0 < data["ious"][0] <= 1
    assert [item["size"] for item in data["items"]] == [[80, 60], [80, 60]]
    empty = CliRunner().invoke(app, ["bench", "prompts", "--root", str(tmp_path / "none")])
    assert empty.exit_code == 2 and "no such folder" in empty.output
