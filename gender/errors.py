"""User-facing errors: anything raised as `UserError` is bad input, not a bug.

The CLI turns it into one line on stderr and exit code 2 (no traceback); the message
must name the file, row or flag at fault.
"""

__all__ = ["UserError", "DataError", "ConfigError"]


class UserError(Exception):
    """Bad input from the user (a path, a flag, a file). Exit code 2."""


class DataError(UserError):
    """A dataset on disk is unreadable or inconsistent."""


class ConfigError(UserError, ValueError):
    """A hyperparameter or option breaks a rule. `field` and `rule`: the offending
    setting's name and what it must be, so the command line can name its flag instead."""

    def __init__(self, message: str, field: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.field, self.rule = field, rule
