"""Instance-mask folders as SynthVOS sources, their held-out split, and the look-alike set."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vos_cli.data.davis import load_davis
from vos_cli.data.lookalike import LookalikeSource, write_lookalike_set
from vos_cli.data.synth import SynthVOS
from vos_cli.data.synth_sources import holdout_split, load_instance_folder
from vos_cli.errors import VosError


def _instance_folder(root, count: int, seed: int = 0):
    """``count`` 60x80 images, each with two square instances (ids 1, 2) and a 255 region."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        mask[5:25, 5:25] = 1
        mask[30:55, 40:70] = 2
        mask[0:3, 0:3] = 255  # unknown: never an object
        Image.fromarray(image).save(root / "images" / f"{i:04d}.jpg")
        Image.fromarray(mask).save(root / "masks" / f"{i:04d}.png")
    return root


def test_holdout_takes_every_tenth_name_and_the_splits_partition(tmp_path):
    paths = [tmp_path / f"{i:03d}.png" for i in range(25)]
    val = holdout_split(paths[::-1], "val")
    train = holdout_split(paths, "train")
    assert [p.name for p in val] == ["009.png", "019.png"]
    assert set(val) | set(train) == set(paths) and not set(val) & set(train)
    with pytest.raises(VosError):
        holdout_split(paths, "test")


def test_instance_folder_gives_one_object_per_id_and_synthvos_cuts_it_exactly(tmp_path):
    root = _instance_folder(tmp_path / "set", 10)
    instances, images = load_instance_folder(root, "train")
    assert len(images) == 9 and len(instances) == 18
    assert {inst.mask_id for inst in instances} == {1, 2}
    synth = SynthVOS(instances, images, 3, (48, 64), mode="single", augment=False)
    cut = synth._make_cutout(next(i for i in instances if i.mask_id == 2))
    assert cut.area == 25 * 30  # the id-2 square, not the id-1 one nor the 255 corner


def test_lookalike_set_is_written_in_davis_layout_and_is_deterministic(tmp_path):
    people = _instance_folder(tmp_path / "people", 20, seed=1)
    scenes = _instance_folder(tmp_path / "scenes", 20, seed=2)
    sources = [LookalikeSource("person", people, 2)]
    names = write_lookalike_set(tmp_path / "a", sources, scenes, num_frames=4, size=(48, 80))
    write_lookalike_set(tmp_path / "b", sources, scenes, num_frames=4, size=(48, 80))
    assert names == ["person-00", "person-01"]
    seqs = load_davis(tmp_path / "a", "val", "2016")
    assert [s.name for s in seqs] == names and len(seqs[0].frame_paths) == 4
    for seq in seqs:
        masks = [seq.read_annotation(i) for i in range(4)]
        assert all(np.count_nonzero(m) > 0 for m in masks)  # the target stays in view
    for sub in ("JPEGImages", "Annotations"):
        for f in sorted((tmp_path / "a" / sub / "480p" / "person-01").iterdir()):
            other = tmp_path / "b" / sub / "480p" / "person-01" / f.name
            assert f.read_bytes() == other.read_bytes()
