"""The trained default model shipped with vos (installed as ``vos_cli.weights``)."""
