"""`python -m search.importance_check`, the documented path of compare the importance estimators: it lives in ``search.tools.importance_check``."""

import sys

from search.tools.importance_check import main

if __name__ == "__main__":
    sys.exit(main())
