"""Where the shipped default model lives.

The repository's top-level ``weights/`` folder is installed as the ``vos_cli.weights`` package
(see pyproject.toml), so the default model is found the same way from a clone, an editable
install or a wheel, whatever the working directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from vos_cli.errors import VosError

DEFAULT_WEIGHTS_NAME = "agame-lite0.pt"


def default_weights_path() -> Path:
    """The shipped default model; a clear error when this install has none."""
    try:
        candidate = resources.files("vos_cli.weights") / DEFAULT_WEIGHTS_NAME
    except ModuleNotFoundError:
        candidate = None
    if candidate is None or not candidate.is_file():
        raise VosError(
            "no default model is installed with vos; pass one with --weights PATH "
            "(a vos weights file, or the authors' A-GAME checkpoint)"
        )
    return Path(str(candidate))


def resolve_weights(path: str | Path | None) -> Path:
    if path is None or str(path) == "":
        return default_weights_path()
    path = Path(path).expanduser()
    if not path.is_file():
        raise VosError(f"weights file not found: {path}")
    return path
