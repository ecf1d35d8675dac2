"""The error a user can fix: printed as one line, exit code 2, no traceback."""

import argparse


class UsageError(Exception):
    """Bad input. The message names the problem and the fix, on one line."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are ``UsageError`` (one line, exit 2) like every other bad input."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")
