"""User-facing errors.

Anything the user can cause (bad paths, bad files, impossible options) is raised as
:class:`VosError`; the CLI prints its one-line message and exits with code 2 instead of
showing a traceback.
"""


class VosError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""
