"""What a resumed run is told about its config: every entry that changed, named by its path."""

from __future__ import annotations

from vos_cli.train.checkpoint import config_changes


def test_equal_configs_have_no_changes() -> None:
    config = {"data": {"size": (240, 432), "sources": [{"kind": "davis16", "weight": 0.5}]}}
    # a tuple saved and read back as a list is the same entry
    assert (
        config_changes(
            config, {"data": {"size": [240, 432], "sources": [dict(kind="davis16", weight=0.5)]}}
        )
        == []
    )


def test_changes_are_named_by_their_path_in_the_configs_order() -> None:
    before = {
        "optim": {"lr": 2e-4, "epochs": 12},
        "data": {"size": [240, 432], "sources": [{"kind": "davis16", "weight": 0.5}]},
        "train": {"threads": 2, "seed": 0},
    }
    after = {
        "optim": {"lr": 2e-4, "epochs": 24},
        "data": {"size": [240, 432], "sources": [{"kind": "davis16", "weight": 0.4}]},
        "train": {"threads": 2, "seed": 0, "max_steps": 100},
    }
    assert config_changes(before, after) == [
        "optim.epochs: 12 -> 24",
        "data.sources[0].weight: 0.5 -> 0.4",
        "train.max_steps: (absent) -> 100",
    ]


def test_a_source_list_of_another_length_is_one_change() -> None:
    one = [{"kind": "davis16"}]
    two = [{"kind": "davis16"}, {"kind": "synth-coco"}]
    assert config_changes({"sources": one}, {"sources": two}) == [f"sources: {one!r} -> {two!r}"]
    assert config_changes({"a": 1, "b": 2}, {"b": 2}) == ["a: 1 -> (absent)"]
