"""`python -m search.export`, the documented path of export a kept ticket: it lives in ``search.tools.export``."""

import sys

from search.tools.export import main

if __name__ == "__main__":
    sys.exit(main())
