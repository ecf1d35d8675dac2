"""Command line: the study's flags, settings, defaults and pre-flight checks."""
