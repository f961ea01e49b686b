"""Benchmarks: DAVIS/YouTube-VOS scoring runs and speed measurement."""
