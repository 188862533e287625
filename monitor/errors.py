"""Errors that end a command with a one-line message instead of a traceback."""


class ConfigError(Exception):
    """A setting is missing or wrong; the CLI prints it on one line and exits 2."""
