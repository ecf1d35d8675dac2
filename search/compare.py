"""`python -m search.compare`, the documented path of compare finished studies: it lives in ``search.tools.compare``."""

import sys

from search.tools.compare import main

if __name__ == "__main__":
    sys.exit(main())
