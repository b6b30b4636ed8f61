"""fastnn book: the books' chapter scripts run unchanged on fastnn (fastnn.book's runner)."""
from .common import add_passthrough


def register(sub):
    from fastnn.book import main
    add_passthrough(sub, "book", main,
                    help="run a chapter script of either book unchanged on fastnn")
