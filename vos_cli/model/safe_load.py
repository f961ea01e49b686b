"""Reading ``torch.save`` files that name classes we do not have, without running anything.

The authors' trainer pickles instances of their own classes (``utils.stats.AverageMeter`` in
``stats``) beside the weights. ``torch.load(weights_only=True)`` refuses such a file, and a plain
``torch.load`` would import their code, or run whatever a malicious file names. Instead the
file's pickle is disassembled (never executed) to list the globals it names, each gets an inert
stand-in class registered with ``torch.serialization.safe_globals``, and the file is loaded by
torch's weights-only unpickler. That unpickler only builds tensors, containers and plain values;
an allow-listed class may be instantiated with ``__new__`` and given its ``__dict__``, which is
exactly how pickle stores a plain object, so the stand-ins receive the instances' fields and
nothing else. Calling a stand-in (what a ``__reduce__`` payload does, e.g. ``os.system(...)``)
is refused.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from vos_cli.errors import VosError

_LEGACY_PICKLES = 4  # magic number, protocol version, system info, then the object itself


class RefusedCall(Exception):
    """A file asked to call something while being loaded."""


class _InertMeta(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise RefusedCall(f"{cls.__module__}.{cls.__qualname__}")


class StandIn(metaclass=_InertMeta):
    """An instance of a class the file names but we do not import: its pickled fields only."""

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state, slots = state
            self.__dict__.update(slots)
        if isinstance(state, dict):
            self.__dict__.update(state)
        elif state is not None:
            self.__dict__["state"] = state

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if k != "history")
        return f"<{type(self).__module__}.{type(self).__qualname__} stand-in: {fields}>"


def stand_in(dotted: str) -> type:
    """A fresh inert class named like the file's global ``module.name``."""
    module, _, name = dotted.rpartition(".")
    return _InertMeta(name, (StandIn,), {"__module__": module, "__qualname__": name})


def _globals_in_pickle(stream: BinaryIO) -> dict[str, str]:
    """Every GLOBAL opcode of one pickle (read, never executed): ``module.name`` as written ->
    as Python 3 names it (protocol 2 writes ``__builtin__.exec`` for ``builtins.exec``)."""
    found = {}
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
            module, _, name = arg.partition(" ")
            new_module, new_name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            new_module = _compat_pickle.IMPORT_MAPPING.get(new_module, new_module)
            found[f"{module}.{name}"] = f"{new_module}.{new_name}"
    return found


def globals_in_file(path: Path) -> dict[str, str]:
    """Every global the file's pickles name: the zip format's ``data.pkl`` or the legacy stream.

    Best effort: whatever this misses stays unknown to the loader, which then refuses it.
    """
    found: dict[str, str] = {}
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.endswith("data.pkl"):
                        with archive.open(name) as stream:
                            found.update(_globals_in_pickle(stream))
        else:
            with open(path, "rb") as stream:
                for _ in range(_LEGACY_PICKLES):
                    found.update(_globals_in_pickle(stream))
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError):
        pass
    return found


_REFUSALS = ("GLOBAL", "reduce", "allowlisted", "persistent_load")


def _reason(message: str) -> str:
    """The line of torch's weights-only error that says what was refused, not its boilerplate."""
    _, marker, rest = message.partition("WeightsUnpickler error:")
    if marker:
        return " ".join(rest.split()).split(". ")[0].rstrip(".")
    for paragraph in message.split("\n\n"):
        text = " ".join(paragraph.split())
        if text and not text.startswith(("Weights only load failed", "Check the documentation")):
            return text.rstrip(".")
    return "unreadable pickle"


def load_untrusted(path: Path) -> Any:
    """``torch.load`` of a file from elsewhere, onto the CPU, building only data.

    Raises VosError (one line) for a file that is no checkpoint or that tries to call anything.
    """
    stand_ins = []
    for written, name in sorted(globals_in_file(path).items()):
        inert = stand_in(name)
        stand_ins += [(inert, written), (inert, name)]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except RefusedCall as call:
        raise VosError(
            f"refusing to load {path}: it asks to run {call} while being loaded "
            "(nothing was run; a weights file needs no code)"
        ) from None
    except pickle.UnpicklingError as exc:
        reason = _reason(str(exc))
        if any(word in reason for word in _REFUSALS):
            raise VosError(f"refusing to load {path}: {reason} (nothing was run)") from None
        raise VosError(
            f"cannot read weights file {path}: not a PyTorch checkpoint ({reason})"
        ) from None
    except Exception as exc:  # torch raises many types for non-checkpoint files
        raise VosError(
            f"cannot read weights file {path}: not a PyTorch checkpoint ({exc.__class__.__name__})"
        ) from None
