"""`python -m search.multitask`, the documented path of the Tickets-Share command (``search.multitask.command``)."""

import sys

from search.multitask.command import main

if __name__ == "__main__":
    sys.exit(main())
