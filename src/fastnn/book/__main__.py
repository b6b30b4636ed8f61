"""``python -m fastnn.book``: see ``fastnn.book``."""
import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m fastnn.book"))
