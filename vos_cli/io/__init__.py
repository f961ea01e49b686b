"""Reading and writing videos, frame folders, masks, overlays, cut-outs and mattes.

* :mod:`vos_cli.io.video`: ``open_frames`` and video files through ffmpeg (re-exports the rest).
* :mod:`vos_cli.io.frames`, :mod:`vos_cli.io.frame_folder`: the frame-source base, frame folders.
* :mod:`vos_cli.io.prefetch`: ``Prefetcher`` (decoding a few frames ahead in a thread).
* :mod:`vos_cli.io.background`, :mod:`vos_cli.io.closing`: bounded background jobs, ``with``.
* :mod:`vos_cli.io.masks`: DAVIS palette, ``read_mask`` / ``write_mask``, the mask writers.
* :mod:`vos_cli.io.encoder`: ``FfmpegWriter``, the threaded, atomic ffmpeg writer of every video.
* :mod:`vos_cli.io.ffmpeg`: the ffmpeg processes (encoder, decoder), their exit status checked.
* :mod:`vos_cli.io.atomic`: ``write_atomically`` (temp file beside the target, then rename).
* :mod:`vos_cli.io.overlay`: ``OverlayWriter`` (H.264 video with coloured masks).
* :mod:`vos_cli.io.alpha`, :mod:`~vos_cli.io.cutout`, :mod:`~vos_cli.io.matte`: the chosen objects'
  alpha, ``CutoutWriter`` (video with alpha, or RGBA PNGs), ``MatteWriter`` (grayscale H.264).
* :mod:`vos_cli.io.frame_rate`: the rate every output is written at (the input's, as decoded).
* :mod:`vos_cli.io.paths`: output checks (``prepare_output_dir`` / ``prepare_output_file``).

Submodules are not imported here, so importing one does not start the others' imports.
"""
