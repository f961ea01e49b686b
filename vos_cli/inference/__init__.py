"""Streaming inference: the frame-at-a-time tracker."""
