"""Making a first-frame mask from a box or a few clicks (``vos mask``, ``vos segment --box``).

The Python API is :class:`vos_cli.prompts.predictor.MaskMaker` with the prompt types of
:mod:`vos_cli.prompts.types`; see docs/prompts.md.
"""

from vos_cli.prompts.types import Box, ObjectPrompt, Point

__all__ = ["Box", "ObjectPrompt", "Point"]
