"""``fastnn gradcheck``: the book's gradient check, backprop against numerical gradients, on
TwoLayerNetwork (volume 1, chapter 5) or SimpleConvNet (chapter 7), and the time of the fast and
the reference numerical gradient.

A convnet's numerical gradient takes two forwards per parameter, so the check uses a small one,
as the book's ch07/gradient_check.py does: Conv1 of 10 filters 3x3 (no pad), a hidden Affine of
10 units, on the first few training images (8x8 digits: 1120 parameters, a few seconds; 28x28
MNIST: 17120, about 10 s on fastnn and two minutes on the reference). Its weights are 0.1 *
standard normal, not the book's 0.01, and so are its biases, not zeros: ReLU's kink at 0 is
where the numerical gradient (a step of 1e-4 either way) and backprop (ReLU'(0) = 0) part, and
with small weights many ReLU inputs lie within the step of it, with zero biases every blank
3x3 patch (the images' borders) puts one exactly on it. (The book checks on random pixels.)
"""
import time

import numpy as np

from .common import (DEFAULT_ACTIVATION, DEFAULT_DTYPE, DEFAULT_HIDDEN, DataSpec, UsageError,
                     add_threads_option, as_images, copy_params, data_spec, describe_model,
                     load_data, nonnegative_int, positive_float, positive_int, set_command,
                     threads)

CONVNET_HIDDEN = 10
CONV_PARAM = {"filter_num": 10, "filter_size": 3, "pad": 0, "stride": 1}


def register(subparsers):
    parser = subparsers.add_parser(
        "gradcheck", help="backprop against numerical gradients",
        description="The book's gradient check (volume 1, chapters 5 and 7) on TwoLayerNetwork "
        "or a small SimpleConvNet, and the time of the fast and the reference numerical "
        "gradient.")
    parser.add_argument("--model", choices=("twolayer", "simple-convnet"), default="twolayer",
                        help="twolayer (default) or simple-convnet (Conv1 10 filters 3x3, as "
                        "the book's ch07/gradient_check.py, on the data's images)")
    parser.add_argument("--data", type=data_spec, default=DataSpec("digits"),
                        metavar="{digits,spiral,mnist:DIR}", help="data set (default digits)")
    parser.add_argument("--hidden", type=positive_int, metavar="N",
                        help=f"hidden units (default {DEFAULT_HIDDEN}; simple-convnet "
                        f"{CONVNET_HIDDEN})")
    parser.add_argument("--batch-size", type=positive_int, default=3, metavar="N",
                        help="the first N training images (default 3, as the book)")
    parser.add_argument("--activation", choices=("sigmoid", "relu"),
                        help=f"twolayer's hidden activation (default {DEFAULT_ACTIVATION})")
    parser.add_argument("--dtype", choices=("float64", "float32"), default=DEFAULT_DTYPE,
                        help=f"parameter dtype (default {DEFAULT_DTYPE})")
    parser.add_argument("--weight-init-std", type=positive_float, default=0.1, metavar="S",
                        help="initial weight scale (default 0.1: with large weights the 1e-7 "
                        "inside the log makes backprop and numerics differ legitimately, with "
                        "small ones a convnet's ReLU kinks)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seeds the initial weights (default 0)")
    add_threads_option(parser)
    set_command(parser, run)


def _models(args, data):
    """The model of each half, from the same parameters."""
    import fastnn
    from fastnn import reference

    if args.model == "simple-convnet":
        if args.activation is not None:
            raise UsageError("--activation: SimpleConvNet's activation is ReLU (the book's)")
        config = dict(hidden_size=args.hidden or CONVNET_HIDDEN, output_size=data.n_classes,
                      weight_init_std=args.weight_init_std, dtype=args.dtype, seed=args.seed)
        input_dim = data.x_train.shape[1:]
        models = [lib.SimpleConvNet(input_dim, dict(CONV_PARAM), **config)
                  for lib in (fastnn, reference)]
        rng = np.random.default_rng([args.seed, 1])  # the biases away from ReLU's kink
        for name, param in models[0].params.items():
            if name[0] == "b":
                param[...] = args.weight_init_std * rng.standard_normal(param.shape)
    else:
        shape = (data.x_train.shape[1], args.hidden or DEFAULT_HIDDEN, data.n_classes)
        config = dict(activation=args.activation or DEFAULT_ACTIVATION, dtype=args.dtype,
                      seed=args.seed)
        models = [lib.TwoLayerNetwork(*shape, args.weight_init_std, **config)
                  for lib in (fastnn, reference)]
    copy_params(*models)
    return models


def run(parser, args):
    data = load_data(args.data)
    if args.model != "twolayer":
        data = as_images(data, args.model)
    if args.batch_size > len(data.x_train):
        parser.error(f"--batch-size {args.batch_size} exceeds the {len(data.x_train)} "
                     f"training images of {data.name}")
    x, t = data.x_train[:args.batch_size], data.t_train[:args.batch_size]
    model, ref_model = _models(args, data)
    n_params = sum(p.size for p in model.params.values())

    print(f"gradient check: {describe_model(model)}, weight_init_std {args.weight_init_std}, "
          f"seed {args.seed}; the first {len(x)} training images of {data.name}")
    with threads(args.threads):
        grads, timings = {}, {}
        for label, m in (("fastnn", model), ("reference", ref_model)):
            start = time.perf_counter()
            grads[label] = m.numerical_gradient(x, t)
            timings[label] = time.perf_counter() - start
        backprop = model.gradient(x, t)

    print(f"{'param':6s} {'shape':>16s} {'mean |backprop - numerical|':>28s} "
          f"{'max |backprop - numerical|':>28s}")
    for name, param in model.params.items():
        diff = np.abs(np.asarray(backprop[name], np.float64) - grads["fastnn"][name])
        print(f"{name:6s} {str(param.shape):>16s} {np.mean(diff):28.3e} {np.max(diff):28.3e}")

    agree = max(float(np.max(np.abs(np.asarray(grads["fastnn"][k], dtype=np.float64)
                                    - grads["reference"][k]))) for k in model.params)
    print(f"numerical gradient of all {n_params} parameters ({2 * n_params} loss evaluations), "
          f"one call each:")
    print(f"  fastnn     {timings['fastnn']:9.4f} s")
    print(f"  reference  {timings['reference']:9.4f} s   "
          f"({timings['reference'] / timings['fastnn']:.1f}x the fastnn time)")
    print(f"  largest |fastnn - reference| numerical gradient difference: {agree:.1e}")
    return 0
