"""Both books' training loops on fastnn's optimizers: the same classes and printed lines as
`fastnn.reference.trainer`.

The loops are the reference's pure Python (a training step's time is the model's and the
optimizer's, both compiled here); what this half changes is the optimizers volume 1's trainer
builds from a name, and ``NetworkTrainer.run_steps``: for a two-layer net trained by backward
with SGD, the mini-batch indices are drawn in Python as each step draws them and all the steps
run in one compiled call (``TwoLayerNet.train_steps``). Volume 2's trainer takes its optimizer
object from the caller.
"""
import numpy as np

from .optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from .reference import trainer as _reference
from .reference.trainer import remove_duplicate  # noqa: F401 -- volume 2's common.trainer name

__all__ = ["Trainer", "NetworkTrainer", "ModelTrainer"]


class Trainer(_reference.Trainer):
    __doc__ = _reference.Trainer.__doc__

    _books = None  # (NetworkTrainer, ModelTrainer) below


class NetworkTrainer(_reference.NetworkTrainer, Trainer):
    __doc__ = _reference.NetworkTrainer.__doc__

    optimizer_classes = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov,
                         "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam}

    def _compiled(self):
        """True when run_steps can hand its steps to network.train_steps: backward gradients,
        fastnn's SGD with a real lr, a network that has train_steps."""
        lr = getattr(self.optimizer, "lr", None)
        return (self.gradient == "backward" and type(self.optimizer) is SGD
                and callable(getattr(self.network, "train_steps", None))
                and isinstance(lr, (int, float, np.integer, np.floating))
                and not isinstance(lr, (bool, np.bool_)) and bool(np.isfinite(lr)))

    def run_steps(self, n_steps):
        n_steps = _reference._check_count("n_steps", n_steps, minimum=0)
        if not self._compiled() or n_steps == 0:
            return super().run_steps(n_steps)
        batches = self._batch_masks(n_steps)
        x, t = self.x_train, self.t_train
        if not (x.dtype == self.network.dtype and x.flags.c_contiguous and x.ndim == 2):
            # only the batches' rows, not all of x, converted to the network's dtype
            rows = batches.reshape(-1)
            x, t = x[rows], t[rows]
            batches = np.arange(rows.size).reshape(batches.shape)
        losses = self.network.train_steps(x, t, batches, self.optimizer.lr).tolist()
        self.train_loss_list.extend(losses)
        self.current_iter += n_steps
        return losses

    run_steps.__doc__ = _reference.NetworkTrainer.run_steps.__doc__

    def _batch_masks(self, n_steps):
        """The next n_steps mini-batches' indices, (n_steps, batch_size): what n_steps calls of
        _batch_mask draw. From a PCG64 generator and an even batch size, one call of
        rng.integers draws them all when it gives the same numbers: each call of a batch takes
        batch_size / 2 64-bit words (two 32-bit draws a word, the leftover half dropped at the
        call's end) unless a draw is rejected (Lemire's method; for 1437 rows about 3e-7 a draw),
        so the block is kept when the generator moved by exactly n_steps * batch_size / 2 words;
        otherwise the state is put back and the steps draw one by one."""
        rng, size = self._rng, self.batch_size
        if rng is not None and size % 2 == 0 and type(rng.bit_generator) is np.random.PCG64:
            start = rng.bit_generator.state
            block = rng.integers(0, self.train_size, (n_steps, size))
            expected = np.random.PCG64()
            expected.state = start
            expected.advance(n_steps * size // 2)
            if expected.state == rng.bit_generator.state:
                return block
            rng.bit_generator.state = start
        batches = np.empty((n_steps, size), np.int64)
        for s in range(n_steps):
            batches[s] = self._batch_mask()
        return batches


class ModelTrainer(_reference.ModelTrainer, Trainer):
    __doc__ = _reference.ModelTrainer.__doc__


Trainer._books = (NetworkTrainer, ModelTrainer)
