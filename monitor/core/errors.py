"""Errors that end a command with a one-line message instead of a traceback."""


class ConfigError(Exception):
    """A setting is missing or wrong; the CLI prints it on one line and exits 2."""


class StateError(ConfigError):
    """The remembered state (a --state-file or its ConfigMap) is unreadable, corrupt, or belongs to
    something else. Never reset silently: forgetting it would forget which rules to restore."""
