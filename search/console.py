"""The ``supertickets`` console script: ``supertickets [flags]`` runs a study (the flags of
``python -m search.run``); ``supertickets compare STUDY ...`` puts finished studies in one table and plot
(``python -m search.compare``), ``supertickets export ...`` writes a kept ticket as a standalone model
(``python -m search.export``), ``supertickets multitask ...`` runs a Tickets-Share study
(``python -m search.multitask``). Each command imports its heavy libraries only once its flags are parsed, so
``--help`` answers at once."""

from __future__ import annotations

import sys

#: Sub-commands besides the study itself.
COMMANDS = {"compare": "put finished studies in one table and plot (supertickets compare --help)",
            "export": "write a kept ticket as a standalone model folder (supertickets export --help)",
            "multitask": "Tickets-Share: multi-task fine-tuning through the tasks' super tickets "
                         "(supertickets multitask --help)"}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the sub-command ``argv[0]`` names (``COMMANDS``), else to ``search.cli.study_command``; returns
    the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else None
    if command == "compare":
        from search.tools.compare import main as compare

        return compare(argv[1:], prog="supertickets compare")
    if command == "export":
        from search.tools.export import main as export

        return export(argv[1:])
    if command == "multitask":
        from search.multitask.command import main as multitask

        return multitask(argv[1:], prog="supertickets multitask")
    from search.cli import study_command as run

    if argv and argv[0] in ("-h", "--help"):
        print("usage: supertickets [study flags] | supertickets COMMAND ...\n\ncommands:\n"
              + "".join(f"  {name:<9} {text}\n" for name, text in COMMANDS.items())
              + "  (none)    run a study: the flags below\n")
    return run.main(argv, prog="supertickets")


if __name__ == "__main__":
    sys.exit(main())
