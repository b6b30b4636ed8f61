"""``fastnn gradcheck``: the book's gradient check (volume 1, chapter 5) on TwoLayerNetwork, and
the time of the fast and the reference numerical gradient."""
import time

import numpy as np

from .common import (DEFAULT_ACTIVATION, DEFAULT_DTYPE, DEFAULT_HIDDEN, DataSpec,
                     add_threads_option, copy_params, data_spec, describe_model, load_data,
                     nonnegative_int, positive_float, positive_int, set_command, threads)

PARAM_NAMES = ("W1", "b1", "W2", "b2")


def register(subparsers):
    parser = subparsers.add_parser(
        "gradcheck", help="backprop against numerical gradients",
        description="The book's gradient check (volume 1, chapter 5) on TwoLayerNetwork, and the "
        "time of the fast and the reference numerical gradient.")
    parser.add_argument("--data", type=data_spec, default=DataSpec("digits"),
                        metavar="{digits,spiral,mnist:DIR}", help="data set (default digits)")
    parser.add_argument("--hidden", type=positive_int, default=DEFAULT_HIDDEN, metavar="N",
                        help=f"hidden units (default {DEFAULT_HIDDEN})")
    parser.add_argument("--batch-size", type=positive_int, default=3, metavar="N",
                        help="the first N training images (default 3, as the book)")
    parser.add_argument("--activation", choices=("sigmoid", "relu"), default=DEFAULT_ACTIVATION,
                        help=f"hidden activation (default {DEFAULT_ACTIVATION})")
    parser.add_argument("--dtype", choices=("float64", "float32"), default=DEFAULT_DTYPE,
                        help=f"parameter dtype (default {DEFAULT_DTYPE})")
    parser.add_argument("--weight-init-std", type=positive_float, default=0.1, metavar="S",
                        help="initial weight scale (default 0.1: with large weights the "
                        "1e-7 inside the log makes backprop and numerics differ legitimately)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seeds the initial weights (default 0)")
    add_threads_option(parser)
    set_command(parser, run)


def run(parser, args):
    import fastnn
    from fastnn import reference

    data = load_data(args.data)
    if args.batch_size > len(data.x_train):
        parser.error(f"--batch-size {args.batch_size} exceeds the {len(data.x_train)} "
                     f"training images of {data.name}")
    x, t = data.x_train[:args.batch_size], data.t_train[:args.batch_size]
    shape = (data.x_train.shape[1], args.hidden, data.n_classes)
    config = dict(activation=args.activation, dtype=args.dtype, seed=args.seed)
    model = fastnn.TwoLayerNetwork(*shape, args.weight_init_std, **config)
    ref_model = reference.TwoLayerNetwork(*shape, args.weight_init_std, **config)
    copy_params(model, ref_model)
    n_params = sum(p.size for p in model.params.values())

    print(f"gradient check: {describe_model(model)}, weight_init_std {args.weight_init_std}, "
          f"seed {args.seed}; the first {len(x)} training images of {data.name}")
    with threads(args.threads):
        table = fastnn.gradient_check(model, x, t)
        grads, timings = {}, {}
        for label, m in (("fastnn", model), ("reference", ref_model)):
            start = time.perf_counter()
            grads[label] = m.numerical_gradient(x, t)
            timings[label] = time.perf_counter() - start

    print(f"{'param':6s} {'shape':>10s} {'mean |backprop - numerical|':>28s} "
          f"{'max |backprop - numerical|':>28s}")
    for name in PARAM_NAMES:
        mean, biggest = table[name]
        print(f"{name:6s} {str(model.params[name].shape):>10s} {mean:28.3e} {biggest:28.3e}")

    agree = max(float(np.max(np.abs(np.asarray(grads["fastnn"][k], dtype=np.float64)
                                    - grads["reference"][k]))) for k in PARAM_NAMES)
    print(f"numerical gradient of all {n_params} parameters ({2 * n_params} loss evaluations), "
          f"one call each:")
    print(f"  fastnn     {timings['fastnn']:9.4f} s")
    print(f"  reference  {timings['reference']:9.4f} s   "
          f"({timings['reference'] / timings['fastnn']:.1f}x the fastnn time)")
    print(f"  largest |fastnn - reference| numerical gradient difference: {agree:.1e}")
    return 0
