"""``fastnn bench``: the benchmark table of ``fastnn.bench``."""
from .common import add_threads_option, set_command


def register(subparsers):
    parser = subparsers.add_parser(
        "bench", help="kernel timings: fastnn against the reference",
        description="fastnn.bench.run(): median times of the fast and the reference half, "
        "their ratio, the memory-bandwidth bound, and PyTorch when installed.")
    add_threads_option(parser)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--quick", action="store_true",
                        help="one timing run per workload instead of seven")
    set_command(parser, run)


def run(parser, args):
    from .. import bench

    bench.run(threads=args.threads, with_torch=not args.no_torch,
              repeat=1 if args.quick else 7)
    return 0
