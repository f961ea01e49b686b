"""YouTube-VOS layout: only annotated frames are exposed, palette ids are read as-is."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_cli.data.snippets import VideoSnippetDataset
from vos_cli.data.ytvos import load_ytvos
from vos_cli.errors import VosError


def _palette_png(path: Path, ids: np.ndarray) -> None:
    img = Image.fromarray(ids, mode="P")
    img.putpalette([0, 0, 0, 236, 95, 103, 249, 145, 87] + [0] * (256 * 3 - 9))
    img.save(path)


def _make_layout(root: Path, with_meta: bool = True) -> None:
    base = root / "train"
    meta = {"videos": {}}
    for vid, num in (("vid_a", 2), ("vid_b", 1)):
        (base / "JPEGImages" / vid).mkdir(parents=True)
        (base / "Annotations" / vid).mkdir(parents=True)
        for f in range(12):
            Image.fromarray(np.full((24, 32, 3), f * 20, np.uint8)).save(
                base / "JPEGImages" / vid / f"{f:05d}.jpg"
            )
        labelled = [0, 5, 10]
        for f in labelled:
            ids = np.zeros((24, 32), np.uint8)
            ids[4:12, 2 + f : 10 + f] = 1
            if num == 2:
                ids[14:20, 20:28] = 2
            _palette_png(base / "Annotations" / vid / f"{f:05d}.png", ids)
        meta["videos"][vid] = {
            "objects": {
                str(k): {"category": "thing", "frames": [f"{f:05d}" for f in labelled]}
                for k in range(1, num + 1)
            }
        }
    if with_meta:
        (base / "meta.json").write_text(json.dumps(meta))


def test_only_annotated_frames(tmp_path: Path):
    _make_layout(tmp_path)
    videos = load_ytvos(tmp_path)
    assert [v.name for v in videos] == ["vid_a", "vid_b"]
    a = videos[0]
    assert len(a) == 3
    assert [p.stem for p in a.frame_paths] == ["00000", "00005", "00010"]
    assert [p.stem for p in a.annotation_paths] == ["00000", "00005", "00010"]
    assert a.num_objects() == 2 and videos[1].num_objects() == 1
    ann = a.read_annotation(1)
    assert ann.dtype == np.uint8 and set(np.unique(ann).tolist()) == {0, 1, 2}
    frame = a.read_frame(2)
    assert frame.shape == (24, 32, 3) and abs(int(frame.mean()) - 200) <= 2  # frame 00010
    assert [v.name for v in load_ytvos(tmp_path, videos=["vid_b"])] == ["vid_b"]


def test_without_meta_and_errors(tmp_path: Path):
    _make_layout(tmp_path, with_meta=False)
    videos = load_ytvos(tmp_path / "train")  # the split folder itself works too
    assert [len(v) for v in videos] == [3, 3]
    assert videos[0].num_objects() == 2
    with pytest.raises(VosError):
        load_ytvos(tmp_path / "nowhere")
    with pytest.raises(VosError):
        load_ytvos(tmp_path, videos=["missing"])


def test_snippets_from_ytvos(tmp_path: Path):
    _make_layout(tmp_path)
    ds = VideoSnippetDataset(
        load_ytvos(tmp_path), 4, (16, 24), "multi", max_objects=2, seed=0, samples_per_epoch=4
    )
    for i in range(4):
        s = ds[i]
        assert s["images"].shape == (4, 3, 16, 24)
        assert 1 in s["labels"][0]
        assert s["source"].split("/")[1] in {"vid_a", "vid_b"}
