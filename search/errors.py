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


#: How a full disk shows in errors: the OS, safetensors' Rust I/O, SQLite.
DISK_FULL = ("No space left on device", "StorageFull", "database or disk is full")


def _disk_full(err: BaseException) -> bool:
    chain = _chain(err, context=True)  # a full disk may surface as another error raised while handling it
    return any(getattr(e, "errno", None) == 28 or any(mark in str(e) for mark in DISK_FULL) for e in chain)


def _innermost(err: BaseException) -> BaseException:
    return _chain(err)[-1]


def _chain(err: BaseException, context: bool = False) -> list[BaseException]:
    """``err`` and what caused it, outermost first: explicit causes, a ``RayTaskError``'s ``cause`` and, with
    ``context``, the error being handled when this one was raised (unless suppressed with ``from None``)."""
    chain, seen = [err], {id(err)}
    while True:
        inner = err.__cause__ or getattr(err, "cause", None)
        if inner is None and context and not err.__suppress_context__:
            inner = err.__context__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return chain
        chain.append(inner)
        seen.add(id(inner))
        err = inner
