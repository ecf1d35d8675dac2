"""The error a user can fix: printed as one line, exit code 2, no traceback."""


class UsageError(Exception):
    """Bad input. The message names the problem and the fix, on one line."""
