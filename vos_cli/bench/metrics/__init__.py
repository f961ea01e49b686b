"""DAVIS semi-supervised scoring: region J, boundary F and their Mean/Recall/Decay statistics.

A numpy-only re-implementation of the official ``davis2017-evaluation`` toolkit
(github.com/davisvideochallenge/davis2017-evaluation, ``davis2017/metrics.py``, ``utils.py``,
``evaluation.py``, ``evaluation_method.py``) that reproduces its numbers, faster. Where the
toolkit's behaviour is surprising, the modules say what it does and why we follow it:

* Objects are ids 1..N with N the largest id of the first ground-truth frame; the first and
  the last frame of every sequence are not scored.
* Void (255 in DAVIS 2017 ground truth): the toolkit zeroes 255 before splitting objects and
  then looks for 255 in the already binary masks, so void pixels end up as plain background.
  ``exclude_void=False`` (the default) reproduces that; ``exclude_void=True`` instead removes
  void pixels from both masks as the toolkit's ``void_pixels`` argument intends.
* Decay compares the first and the last of four (overlapping) bins built with the toolkit's
  ``round(linspace(1, n, 5)) - 1`` edges, not ``np.array_split``.

Modules: :mod:`.measures` (J and F of one mask pair), :mod:`.stats` (per-object statistics and
the result types), :mod:`.driver` (frames, sequences and results folders over processes) and
:mod:`.report` (the toolkit's CSVs and rich tables).
"""
