"""The ``supertickets`` console script: ``supertickets [flags]`` runs a study (the flags of
``python -m search.run``); ``supertickets compare STUDY ...`` puts finished studies in one table and plot
(``python -m search.compare``)."""

from __future__ import annotations

import sys

#: Sub-commands besides the study itself.
COMMANDS = {"compare": "put finished studies in one table and plot (supertickets compare --help)"}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``search.tools.compare`` for ``compare``, else to ``search.cli.study_command``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "compare":
        from search.tools.compare import main as compare

        return compare(argv[1:], prog="supertickets compare")
    from search.cli import study_command as run

    if argv and argv[0] in ("-h", "--help"):
        print("usage: supertickets [study flags] | supertickets compare STUDY [STUDY ...]\n\ncommands:\n"
              + "".join(f"  {name:<9} {text}\n" for name, text in COMMANDS.items())
              + "  (none)    run a study: the flags below\n")
    return run.main(argv, prog="supertickets")


if __name__ == "__main__":
    sys.exit(main())
