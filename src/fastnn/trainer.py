"""Both books' training loops on fastnn's optimizers: the same classes and printed lines as
`fastnn.reference.trainer`.

The loops are the reference's pure Python (a training step's time is the model's and the
optimizer's, both compiled here); what this half changes is the optimizers volume 1's trainer
builds from a name. Volume 2's trainer takes its optimizer object from the caller.
"""
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


class ModelTrainer(_reference.ModelTrainer, Trainer):
    __doc__ = _reference.ModelTrainer.__doc__


Trainer._books = (NetworkTrainer, ModelTrainer)
