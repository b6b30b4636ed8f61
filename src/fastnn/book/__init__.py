"""``python -m fastnn.book`` / ``fastnn book``: the books' chapter scripts, unchanged, on fastnn.

    python -m fastnn.book [--reference] [--mnist DIR] [--volume 1|2] SCRIPT [ARGS...]

runs SCRIPT as ``cd $(dirname SCRIPT) && python $(basename SCRIPT) ARGS`` would (``__main__``, its
argv, ``__file__``, its directory as the working directory and first on ``sys.path``, its exit
status and traceback), with every ``common.*`` and ``dataset.*`` import answered by fastnn
(``--reference``: by ``fastnn.reference``) instead of the book's own ``common/`` and ``dataset/``:

- ``hook``: the import hook, first on ``sys.meta_path``;
- ``maps``: which fastnn name answers each book name, per volume;
- ``shims``: the loaders (``dataset.mnist`` from ``--mnist DIR`` or ``$FASTNN_MNIST``, never a
  download; ``dataset.spiral``) and volume 2's ``GPU = False``;
- ``runner``: the command line, the volume's detection, the run.

Without a display and with ``MPLBACKEND`` unset, matplotlib uses its Agg backend, so the scripts'
``plt.show()`` returns at once.
"""
from .runner import detect_volume, main, run_script

__all__ = ["main", "run_script", "detect_volume"]
