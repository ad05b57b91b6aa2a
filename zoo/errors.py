"""Errors that mean the user asked for something its inputs do not have (the CLI prints them as one line)."""


class UsageError(ValueError):
    """A command or call asked for something its inputs do not have."""
