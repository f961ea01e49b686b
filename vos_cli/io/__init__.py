"""Reading and writing videos, frame folders, masks and overlays."""

