"""`python -m search.run`, the documented path of the study command: it lives in ``search.cli.study_command``."""

import sys

from search.cli.study_command import main, parser, resume_command  # noqa: F401  (what was importable here)

if __name__ == "__main__":
    sys.exit(main())
