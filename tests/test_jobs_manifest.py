"""The jobs CSV: rows into segment requests, and every problem listed before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import first_mask
from vos_cli.io.masks import write_mask
from vos_cli.jobs.manifest import JobDefaults, ManifestError, load_manifest


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A folder with two (fake) videos and a first-frame mask with objects 1 and 4."""
    (tmp_path / "a.mp4").write_bytes(b"video")
    (tmp_path / "b.mp4").write_bytes(b"video")
    (tmp_path / "frames").mkdir()
    write_mask(tmp_path / "first.png", first_mask())
    write_mask(tmp_path / "later.png", first_mask())
    return tmp_path


def _problems(path: Path, defaults: JobDefaults | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, defaults or JobDefaults())
    return caught.value.problems


def test_rows_become_requests_with_paths_from_the_csv_folder(folder: Path, tmp_path: Path):
    csv = folder / "jobs.csv"
    csv.write_text(
        "\ufeffSource , MASK,out,cutout,objects,feather,size\n"  # a BOM, spaces, capitals
        "a.mp4,first.png,,,,,\n"
        "\n"
        "# a comment line\n"
        f"{folder / 'frames'},first.png;5:later.png,masks/b,cut.webm,1;4,2,0\n"
    )
    defaults = JobDefaults(size=360, device="cpu", precision="fp32", flip=True)
    first, second = load_manifest(csv, defaults)
    assert (first.index, first.line, second.index, second.line) == (0, 2, 1, 5)
    r = first.request
    assert r.source == folder / "a.mp4" and r.masks == [(0, folder / "first.png")]
    assert r.out_dir == folder / "a_masks"  # no output given: vos segment's default
    assert (r.overlay, r.cutout, r.matte, r.objects, r.feather) == (None, None, None, None, 0)
    assert (r.size, r.device, r.precision, r.flip) == (360, "cpu", "fp32", True)  # defaults
    r = second.request
    assert r.masks == [(0, folder / "first.png"), (5, folder / "later.png")]
    assert (r.out_dir, r.cutout) == (folder / "masks/b", folder / "cut.webm")
    assert (r.objects, r.feather, r.size) == ([1, 4], 2, 0)  # the cells win over the defaults
    assert second.outputs == [folder / "masks/b", folder / "cut.webm"]


def test_every_problem_is_listed_and_nothing_is_written(folder: Path):
    csv = folder / "jobs.csv"
    csv.write_text(
        "source,mask,out,overlay,cutout,matte,objects,size\n"
        "missing.mp4,first.png,,,,,,\n"  # 2: source not found
        "a.mp4,nope.png,o3,,,,,\n"  # 3: mask not found
        "a.mp4,,o4,,,,,\n"  # 4: no mask
        "a.mp4,first.png,o5,,,,1,\n"  # 5: objects without a cutout or a matte
        "a.mp4,first.png,,,c.webm,,7,\n"  # 6: no object 7
        "a.mp4,first.png,,o.avi,c.gif,m.webm,,big\n"  # 7: overlay, cutout, matte, size
        "a.mp4,first.png,same,,,,,\n"  # 8
        "b.mp4,first.png,same,,,,,\n"  # 9: same output as line 8
        "b.mp4,first.png,same/inner,,,,,\n"  # 10: inside line 8's folder
        "b.mp4,first.png,,a.mp4,,,,\n"  # 11: an output that is an input
        "a.mp4,first.png,,,,,,,extra\n"  # 12: a cell too many
        ",first.png,,,,,,\n"  # 13: no source
    )
    before = sorted(p.name for p in folder.iterdir())
    problems = _problems(csv)
    expected = [
        ("jobs.csv:2:", "source not found"),
        ("jobs.csv:3:", "Mask not found"),
        ("jobs.csv:4:", "no mask"),
        ("jobs.csv:5:", "objects applies to the cutout and the matte"),
        ("jobs.csv:6:", "no mask has object 7"),
        ("jobs.csv:7:", "overlay must end with"),
        ("jobs.csv:7:", "Cut-out must end with"),
        ("jobs.csv:7:", "Matte file must end with"),
        ("jobs.csv:7:", "size must be a whole number"),
        ("jobs.csv:9:", "is also line 8's out"),
        ("jobs.csv:10:", "is inside line 8's out"),
        ("jobs.csv:11:", "is line 3's input"),
        ("jobs.csv:12:", "cells but the header names 8 columns"),
        ("jobs.csv:13:", "no source"),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in problems), (where, what, problems)
    assert len(problems) == len(expected), problems
    assert all("\n" not in p for p in problems)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_header_problems_are_all_listed(folder: Path):
    csv = folder / "jobs.csv"
    csv.write_text("source,box,out,out,\na.mp4,1 2 3 4,x,y,\n")
    problems = _problems(csv)
    assert any("unknown column 'box'" in p and "source, mask, out" in p for p in problems)
    assert any("column 'out' appears twice" in p for p in problems)
    assert any("column 5 of the header has no name" in p for p in problems)
    assert any("no 'mask' column" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "no header row"), ("source,mask\n", "no jobs"), ('source,mask\n"a.mp4,first', "CSV")],
)
def test_empty_or_broken_files(folder: Path, text: str, message: str):
    csv = folder / "jobs.csv"
    csv.write_text(text)
    problems = _problems(csv)
    assert any(message in p for p in problems), problems


def test_a_mask_with_no_object_is_found_before_any_work(folder: Path):
    write_mask(folder / "empty.png", np.zeros((8, 8), np.uint8))
    csv = folder / "jobs.csv"
    csv.write_text("source,mask\na.mp4,empty.png\n")
    assert any("contains no object" in p for p in _problems(csv))


def test_defaults_for_objects_apply_to_rows_with_a_cutout_only(folder: Path):
    csv = folder / "jobs.csv"
    csv.write_text("source,mask,matte\na.mp4,first.png,m.mp4\nb.mp4,first.png,\n")
    with_matte, without = load_manifest(csv, JobDefaults(objects=[4], feather=3))
    assert (with_matte.request.objects, with_matte.request.feather) == ([4], 3)
    assert (without.request.objects, without.request.feather) == (None, 0)
