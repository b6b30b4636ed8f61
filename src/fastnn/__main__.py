"""``python -m fastnn``: the same command line as the ``fastnn`` entry point."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
