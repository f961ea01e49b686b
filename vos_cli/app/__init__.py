"""``vos annotate``: a page served on 127.0.0.1 to point at objects, check the mask and track.

:mod:`vos_cli.app.workspace` holds the one video (frames on demand, the mask maker, the tracking
job); :mod:`vos_cli.app.server` serves the page and its API behind one guard (token, Host, fixed
routes); the page itself is plain HTML, CSS and JavaScript in ``vos_cli/app/static``.
"""
