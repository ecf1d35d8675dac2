"""The error a user can fix (printed as one line, exit code 2, no traceback), and the one line that says what
failed when a study fails for another reason (exit code 1)."""

import argparse


class UsageError(Exception):
    """Bad input. The message names the problem and the fix, on one line."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are ``UsageError`` (one line, exit 2) like every other bad input."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


def failure_summary(err: BaseException) -> str:
    """What failed, in one line for a person: a full disk said as such, else the innermost cause (a
    ``RayTaskError`` wraps the worker's own error, whose text would otherwise carry the worker's traceback) as
    ``Type: message``, at most 300 characters."""
    if _disk_full(err):
        return "the disk is full (No space left on device)"
    cause = _innermost(err)
    text = " ".join(str(cause).split()) or type(cause).__name__
    return f"{type(cause).__name__}: {text[:300]}"


def _disk_full(err: BaseException) -> bool:
    cause = _innermost(err)
    return getattr(cause, "errno", None) == 28 or any(
        mark in str(err) for mark in ("No space left on device", "StorageFull"))


def _innermost(err: BaseException) -> BaseException:
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        inner = err.__cause__ or getattr(err, "cause", None)
        if not isinstance(inner, BaseException):
            break
        err = inner
    return err
