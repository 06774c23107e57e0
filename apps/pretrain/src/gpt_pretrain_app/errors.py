"""The one kind of error a user's arguments can cause."""


class ArgsError(ValueError):
    """An invalid flag or combination of flags: printed as one `error: ...` line, exit code 2."""
