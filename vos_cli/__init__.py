"""vos: video object segmentation with A-GAME (Johnander et al., CVPR 2019)."""

__version__ = "0.1.0"
