"""Both books' training loops (``common/trainer.py`` of volumes 1 and 2).

- ``NetworkTrainer`` -- volume 1, chapter 6: ``NetworkTrainer(network, x_train, t_train, x_test,
  t_test, epochs=20, mini_batch_size=100, optimizer='SGD', optimizer_param={'lr': 0.01},
  evaluate_sample_num_per_epoch=None, verbose=True)`` with ``train()``, ``train_step()``,
  ``train_loss_list``, ``train_acc_list`` and ``test_acc_list``. Mini-batches are drawn with
  replacement by ``np.random.choice`` from NumPy's global state, as the book does.
- ``ModelTrainer`` -- volume 2, chapter 1: ``ModelTrainer(model, optimizer)`` with ``fit(x, t,
  max_epoch=10, batch_size=32, max_grad=None, eval_interval=20)``, ``loss_list`` and ``plot()``.
  Each epoch visits the data in one ``np.random.permutation`` order, as the book does.
- ``Trainer`` -- either of them, told apart by the arguments (see its docstring), so one name
  serves both books' scripts.

Both print exactly what the books' trainers print, and draw the same random numbers in the same
order, so a script seeded with ``np.random.seed(s)`` prints the same numbers.
"""

import time

import numpy as np

from . import optimizers
from .util import clip_grads

__all__ = ["Trainer", "NetworkTrainer", "ModelTrainer"]


def _called_as_volume2(args, kwargs):
    """True for Trainer(model, optimizer) with an optimizer object (anything with ``update``)."""
    if len(args) > 1:
        second = args[1]
    elif "x_train" in kwargs:
        return False
    else:
        second = kwargs.get("optimizer")
    return callable(getattr(second, "update", None))


class Trainer:
    """Either book's trainer under one name, picked from the call:

    - ``Trainer(model, optimizer)``, the second argument an optimizer object (anything with an
      ``update`` method): volume 2's ``ModelTrainer``;
    - any other call, ``Trainer(network, x_train, t_train, x_test, t_test, ...)``: volume 1's
      ``NetworkTrainer`` (its ``optimizer`` is a name such as ``'SGD'``, never an object).

    The object made is an instance of the trainer picked (and of ``Trainer``). Each half's
    ``Trainer`` picks that half's two trainers (``_books``).
    """

    _books = None  # (volume 1's trainer, volume 2's trainer), set below this module's classes

    def __new__(cls, *args, **kwargs):
        if "_books" in vars(cls):  # the dispatching Trainer itself, not one book's trainer
            volume1, volume2 = cls._books
            cls = volume2 if _called_as_volume2(args, kwargs) else volume1
        return super().__new__(cls)


def _check_count(name, value, minimum=1):
    """value as an int >= minimum, or ValueError / TypeError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_rows(name_x, x, name_t, t):
    """x and t as arrays with the same, nonzero number of rows."""
    x, t = np.asarray(x), np.asarray(t)
    if x.ndim == 0 or t.ndim == 0 or len(x) != len(t) or len(x) == 0:
        raise ValueError(f"{name_x} and {name_t} need the same nonzero number of rows: "
                         f"{name_x}.shape={x.shape}, {name_t}.shape={t.shape}")
    return x, t


class NetworkTrainer(Trainer):
    """Volume 1's trainer: mini-batch training of a network (volume 1's, with a params dict,
    ``gradient`` and ``loss``; or, with ``gradient='backward'``, volume 2's).

    A step draws ``mini_batch_size`` row indices with replacement (``np.random.choice(train_size,
    mini_batch_size)`` from NumPy's global state, or ``rng.choice`` when ``rng`` -- a seed or a
    ``np.random.Generator`` -- is given), computes the gradients, updates ``network.params`` with
    the optimizer named by ``optimizer`` (case-insensitive: sgd, momentum, nesterov, adagrad,
    rmsprop, adam; built with ``optimizer_param``) and records the mini-batch loss. How the
    gradients and the loss are computed is ``gradient``:

    - ``'gradient'`` (the book's): ``grads = network.gradient(x, t)``, the update, then
      ``loss = network.loss(x, t)`` with the updated parameters;
    - ``'numerical_gradient'``: the same with ``network.numerical_gradient`` (chapter 4);
    - ``'backward'`` (volume 2's models): ``loss = network.forward(x, t)`` before the update,
      ``network.backward()``, then the update of ``network.params`` with ``network.grads``.

    ``train()`` runs ``int(epochs * iter_per_epoch)`` steps, ``iter_per_epoch`` being
    ``max(train_size / mini_batch_size, 1)`` (a float, as the book's: a batch larger than the data
    is allowed), and then measures the test accuracy. ``train_step()`` is one step; when the step
    count before it is a multiple of ``iter_per_epoch`` it also appends the accuracy on the train
    and test data (their first ``evaluate_sample_num_per_epoch`` rows when that is given) to
    ``train_acc_list`` and ``test_acc_list``. With ``verbose`` both print the book's lines.
    ``steps(n)`` runs n steps without that evaluation and printing, yielding each step's loss,
    for a caller that evaluates and reports in its own way; ``run_steps(n)`` runs them at once
    and returns the losses (``fastnn train``, per epoch).
    """

    optimizer_classes = {"sgd": optimizers.SGD, "momentum": optimizers.Momentum,
                         "nesterov": optimizers.Nesterov, "adagrad": optimizers.AdaGrad,
                         "rmsprop": optimizers.RMSprop, "adam": optimizers.Adam}
    # gradient= -> the network's methods that a step calls
    gradient_methods = {"gradient": ("gradient", "loss"),
                        "numerical_gradient": ("numerical_gradient", "loss"),
                        "backward": ("forward", "backward")}

    # optimizer_param's default is the book's dict; it is only read, never changed
    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
                 optimizer="SGD", optimizer_param={"lr": 0.01}, evaluate_sample_num_per_epoch=None,
                 verbose=True, *, rng=None, gradient="gradient"):
        if not isinstance(optimizer, str):
            raise TypeError(f"optimizer must be a name ({', '.join(self.optimizer_classes)}), "
                            f"got {type(optimizer).__name__}; Trainer(model, optimizer) with an "
                            f"optimizer object is volume 2's trainer")
        if optimizer.lower() not in self.optimizer_classes:
            raise ValueError(f"unknown optimizer {optimizer!r}: use one of "
                             f"{', '.join(self.optimizer_classes)}")
        if gradient not in self.gradient_methods:
            raise ValueError(f"gradient must be one of {tuple(self.gradient_methods)}, got "
                             f"{gradient!r}")
        for method in self.gradient_methods[gradient]:
            if not callable(getattr(network, method, None)):
                raise TypeError(f"gradient={gradient!r} needs network.{method}(), which "
                                f"{type(network).__name__} does not have")
        if isinstance(epochs, bool) or not (isinstance(epochs, (int, float, np.number))
                                            and np.isfinite(epochs) and epochs > 0):
            raise ValueError(f"epochs must be a positive number, got {epochs!r}")
        mini_batch_size = _check_count("mini_batch_size", mini_batch_size)
        if evaluate_sample_num_per_epoch is not None:
            evaluate_sample_num_per_epoch = _check_count("evaluate_sample_num_per_epoch",
                                                         evaluate_sample_num_per_epoch)
        x_train, t_train = _check_rows("x_train", x_train, "t_train", t_train)
        x_test, t_test = _check_rows("x_test", x_test, "t_test", t_test)

        self.network = network
        self.verbose = verbose
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = self.optimizer_classes[optimizer.lower()](**optimizer_param)
        self.gradient = gradient
        self._rng = None if rng is None else np.random.default_rng(rng)

        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0

        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []

    def _batch_mask(self):
        """The next mini-batch's row indices."""
        if self._rng is None:
            return np.random.choice(self.train_size, self.batch_size)
        # the numbers rng.choice(train_size, batch_size) draws, without its overhead
        return self._rng.integers(0, self.train_size, self.batch_size)

    def _update(self):
        """One mini-batch: gradients, the optimizer's update; returns the loss."""
        batch_mask = self._batch_mask()
        x_batch = self.x_train[batch_mask]
        t_batch = self.t_train[batch_mask]
        network = self.network

        if self.gradient == "backward":
            loss = network.forward(x_batch, t_batch)
            network.backward()
            self.optimizer.update(network.params, network.grads)
            return loss
        grads = getattr(network, self.gradient)(x_batch, t_batch)
        self.optimizer.update(network.params, grads)
        return network.loss(x_batch, t_batch)

    def _evaluate(self):
        """The book's end of an epoch: both accuracies recorded (and printed when verbose)."""
        self.current_epoch += 1
        n = self.evaluate_sample_num_per_epoch  # None: every row
        train_acc = self.network.accuracy(self.x_train[:n], self.t_train[:n])
        test_acc = self.network.accuracy(self.x_test[:n], self.t_test[:n])
        self.train_acc_list.append(train_acc)
        self.test_acc_list.append(test_acc)
        if self.verbose:
            print(f"=== epoch:{self.current_epoch!s}, train acc:{train_acc!s}, "
                  f"test acc:{test_acc!s} ===")

    def train_step(self):
        """One training step, and the accuracies at an epoch's start; returns the loss."""
        loss = self._update()
        self.train_loss_list.append(loss)
        if self.verbose:
            print(f"train loss:{loss!s}")
        if self.current_iter % self.iter_per_epoch == 0:
            self._evaluate()
        self.current_iter += 1
        return loss

    def train(self):
        """max_iter training steps, then the test accuracy on all of x_test (printed)."""
        for _ in range(self.max_iter):
            self.train_step()

        test_acc = self.network.accuracy(self.x_test, self.t_test)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print(f"test acc:{test_acc!s}")

    def steps(self, n_steps):
        """Run n_steps training steps, yielding each one's loss (also appended to
        train_loss_list): train_step without its per-epoch accuracies and printing."""
        n_steps = _check_count("n_steps", n_steps, minimum=0)
        for _ in range(n_steps):
            loss = self._update()
            self.train_loss_list.append(loss)
            self.current_iter += 1
            yield loss

    def run_steps(self, n_steps):
        """Run n_steps training steps at once; returns their losses (a list, also appended to
        train_loss_list). The same steps as steps(n_steps); a faster half may run them in one
        call."""
        return list(self.steps(n_steps))


def remove_duplicate(params, grads):
    """Volume 2's merge of shared weights before an update: parameters that are one array, or a
    2-D array and another equal to its transpose (weight tying), are kept once, the gradient of
    each later copy added (transposed for a tie) into the first one's gradient, in place.
    Returns new lists (params, grads)."""
    kept_params, kept_grads = [], []
    for param, grad in zip(params, grads):
        for i, kept in enumerate(kept_params):
            if kept is param:
                kept_grads[i] += grad
                break
            if (kept.ndim == 2 and param.ndim == 2 and kept.T.shape == param.shape
                    and np.all(kept.T == param)):
                kept_grads[i] += grad.T
                break
        else:
            kept_params.append(param)
            kept_grads.append(grad)
    return kept_params, kept_grads


class ModelTrainer(Trainer):
    """Volume 2's trainer: ``fit`` a model with ``params``/``grads`` lists, ``forward(x, t)`` ->
    loss and ``backward()``, with an optimizer object (``update(params, grads)``).

    Each epoch shuffles the data with ``np.random.permutation`` (NumPy's global state) and takes
    ``len(x) // batch_size`` consecutive mini-batches of it; each step merges shared weights
    (``remove_duplicate``), clips the gradients to the norm ``max_grad`` when given
    (``clip_grads``) and updates. Every ``eval_interval`` steps of an epoch (at its steps 1,
    1 + eval_interval, ...; None: never) it prints the book's line with the mean loss since the
    last one and appends that mean to ``loss_list``.
    """

    def __init__(self, model, optimizer):
        if isinstance(optimizer, type) or not callable(getattr(optimizer, "update", None)):
            raise TypeError(f"optimizer must be an optimizer object with an update(params, "
                            f"grads) method, e.g. SGD(), got {optimizer!r}")
        self.model = model
        self.optimizer = optimizer
        self.loss_list = []
        self.eval_interval = None
        self.current_epoch = 0

    def fit(self, x, t, max_epoch=10, batch_size=32, max_grad=None, eval_interval=20):
        """Train on x (N, ...) and t (N, ...) for max_epoch epochs (see the class)."""
        x, t = _check_rows("x", x, "t", t)
        max_epoch = _check_count("max_epoch", max_epoch, minimum=0)
        batch_size = _check_count("batch_size", batch_size)
        if batch_size > len(x):
            raise ValueError(f"batch_size {batch_size} is larger than the {len(x)} samples: "
                             f"an epoch would have no mini-batch")
        if eval_interval is not None:
            eval_interval = _check_count("eval_interval", eval_interval)
        if max_grad is not None and not max_grad > 0:
            raise ValueError(f"max_grad must be positive (or None), got {max_grad!r}")

        data_size = len(x)
        max_iters = data_size // batch_size
        self.eval_interval = eval_interval
        model, optimizer = self.model, self.optimizer
        total_loss = 0
        loss_count = 0

        start_time = time.time()
        for _ in range(max_epoch):
            order = np.random.permutation(data_size)
            x, t = x[order], t[order]

            for iters in range(max_iters):
                batch = slice(iters * batch_size, (iters + 1) * batch_size)
                loss = model.forward(x[batch], t[batch])
                model.backward()
                params, grads = remove_duplicate(model.params, model.grads)
                if max_grad is not None:
                    clip_grads(grads, max_grad)
                optimizer.update(params, grads)
                total_loss += loss
                loss_count += 1

                if eval_interval is not None and iters % eval_interval == 0:
                    avg_loss = total_loss / loss_count
                    elapsed_time = time.time() - start_time
                    print("| epoch %d |  iter %d / %d | time %d[s] | loss %.2f"
                          % (self.current_epoch + 1, iters + 1, max_iters, elapsed_time,
                             avg_loss))
                    self.loss_list.append(float(avg_loss))
                    total_loss, loss_count = 0, 0

            self.current_epoch += 1

    def plot(self, ylim=None):
        """loss_list against its index with matplotlib's pyplot, then ``plt.show()``."""
        import matplotlib.pyplot as plt

        if ylim is not None:
            plt.ylim(*ylim)
        plt.plot(np.arange(len(self.loss_list)), self.loss_list, label="train")
        plt.xlabel(f"iterations (x{self.eval_interval})")
        plt.ylabel("loss")
        plt.show()


Trainer._books = (NetworkTrainer, ModelTrainer)
