"""vos: video object segmentation with A-GAME (Johnander et al., CVPR 2019)."""

# The one place the version is written: pyproject.toml reads it (dynamic version), and
# `vos --version` prints the installed distribution's version, falling back to this one.
__version__ = "0.1.0"
