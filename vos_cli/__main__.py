"""``python -m vos_cli`` is the same as the ``vos`` command."""

from vos_cli.cli import main

main()
