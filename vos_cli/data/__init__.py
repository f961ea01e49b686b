"""Datasets: DAVIS, YouTube-VOS and SynthVOS, plus sampling and augmentation."""

