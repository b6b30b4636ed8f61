"""The import hook: the book's ``common.*`` and ``dataset.*`` answered by fastnn.

``BookFinder`` goes first on ``sys.meta_path``, so the book's own ``common/`` and ``dataset/``
(which the scripts reach with ``sys.path.append(os.pardir)``) are never imported. Each book module
becomes a module whose names are fastnn's objects (see ``maps``), looked up when the script imports
it.

A name fastnn does not have:

- ``from common.layers import Convolution`` raises ``ImportError: fastnn has no 'Convolution' for
  common.layers yet`` at that line;
- ``from common.layers import *`` binds a ``Missing`` in its place, which raises the same error
  when the script uses it (so a script that never uses it runs).
"""
import dis
import importlib
import importlib.machinery
import sys

import numpy as np

PACKAGES = ("common", "dataset")
_NOT_FOUND = object()
_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


class Missing:
    """A book name fastnn does not have, bound by ``from module import *``: any use raises."""

    def __init__(self, message):
        self._message = message

    def __call__(self, *args, **kwargs):
        raise ImportError(self._message)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(self._message)

    def __mro_entries__(self, bases):
        raise ImportError(self._message)

    def __repr__(self):
        return f"<Missing: {self._message}>"


def _called_by_import_from():
    """True when the module ``__getattr__`` calling this runs for a ``from m import name`` line
    (not for ``from m import *``, an attribute access or ``hasattr``)."""
    try:
        frame = sys._getframe(2)
    except ValueError:  # called from C with no Python frame above
        return False
    return frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM


def resolve(place, root):
    """The object a map entry names (see ``maps``), or _NOT_FOUND."""
    place, _, required = place.partition("?")
    if place == "numpy":
        return np
    if place.startswith("fastnn.book."):
        module_name, _, attr = place.rpartition(".")
    else:
        sub, _, attr = place.rpartition(".")
        module_name = f"{root}.{sub}" if sub else root
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        return _NOT_FOUND
    obj = getattr(module, attr, _NOT_FOUND)
    if obj is not _NOT_FOUND and required and not hasattr(obj, required):
        return _NOT_FOUND
    return obj


def _module_getattr(module_name, names, missing, volume):
    """The ``__getattr__`` of a book module: its names that fastnn lacks, and names it never had."""

    def __getattr__(name):
        if name in missing:
            if _called_by_import_from():
                raise ImportError(missing[name], name=module_name)
            return Missing(missing[name])
        if _called_by_import_from():
            what = "names" if module_name not in PACKAGES else "modules"
            answers = ", ".join(sorted(names))
            raise ImportError(f"cannot import name {name!r} from {module_name!r}: fastnn.book "
                              f"answers the book's volume {volume} {what} {answers} "
                              f"(--volume 1|2 chooses the book)", name=module_name)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    return __getattr__


class BookFinder:
    """Finds and loads ``common``, ``dataset`` and the book modules of one volume's map.

    modules: {"common.layers": {name: places}, ...} (``maps.VOLUMES[volume]``); root: "fastnn" or
    "fastnn.reference".

    A meta path finder and its own loader by the import system's protocol (``find_spec``,
    ``create_module``, ``exec_module``), without importlib.abc's base classes: importing
    importlib.abc costs ~10 ms (it imports importlib.resources, tempfile, shutil, ...), 5% of a
    sub-second chapter script's run.
    """

    def __init__(self, modules, root, volume):
        self.modules = modules
        self.root = root
        self.volume = volume

    def find_spec(self, fullname, path=None, target=None):
        package = fullname.partition(".")[0]
        if package not in PACKAGES:
            return None
        origin = f"fastnn.book: the book's volume {self.volume} on {self.root}"
        if fullname == package:
            return importlib.machinery.ModuleSpec(fullname, self, origin=origin, is_package=True)
        if fullname not in self.modules:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: fastnn.book answers the book's volume "
                f"{self.volume} {package} modules {', '.join(self._submodules(package))} "
                f"(--volume 1|2 chooses the book)", name=fullname)
        return importlib.machinery.ModuleSpec(fullname, self, origin=origin)

    def _submodules(self, package):
        return sorted(m for m in self.modules if m.startswith(package + "."))

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__
        if name in PACKAGES:
            module.__getattr__ = _module_getattr(name, self._submodules(name), {}, self.volume)
            return
        entries = self.modules[name]
        missing = {}
        for attr, places in entries.items():
            obj = next((o for o in (resolve(p, self.root) for p in places) if o is not _NOT_FOUND),
                       _NOT_FOUND)
            if obj is _NOT_FOUND:
                missing[attr] = f"{self.root} has no {attr!r} for {name} yet"
            else:
                setattr(module, attr, obj)
        module.__all__ = [attr for attr in entries if not attr.startswith("_")]
        module.__getattr__ = _module_getattr(name, entries, missing, self.volume)


def install(modules, root, volume):
    """Put a BookFinder first on sys.meta_path (forgetting any common/dataset already imported)."""
    for name in list(sys.modules):
        if name.partition(".")[0] in PACKAGES:
            del sys.modules[name]
    finder = BookFinder(modules, root, volume)
    sys.meta_path.insert(0, finder)
    return finder
