"""``fastnn bench``: the benchmark table of ``fastnn.bench`` (its options: ``fastnn bench --help``)."""
from .common import add_passthrough


def register(subparsers):
    from .. import bench
    add_passthrough(subparsers, "bench", lambda argv: bench.main(argv, prog="fastnn bench"),
                    help="every workload timed against the book's code")
