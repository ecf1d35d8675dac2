"""`python -m search.run`, the documented path of the study command: it lives in ``search.cli.study_command``."""

import sys

from search.cli.study_command import main, parser, resume_command

__all__ = ["main", "parser", "resume_command"]  # what was importable here before the move

if __name__ == "__main__":
    sys.exit(main())
