"""``vos segment --jobs``: many videos from one CSV, shared out over torchrun processes, resumable.

``manifest`` turns the CSV into :class:`~vos_cli.segment.SegmentRequest` objects (every problem
found before any work), ``records`` knows which jobs an earlier run completed, ``plan`` decides
what this run does, ``board`` hands jobs out to processes, ``runner`` runs them through
:func:`~vos_cli.segment.segment_video` and ``report`` writes the per-video CSV.
"""
