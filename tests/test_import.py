"""``import fastnn`` and ``import fastnn.reference`` are lazy (PEP 562, fastnn/_lazy.py): they
import no submodule until a name is used, and every public name is still there, as ``fastnn.X``,
``from fastnn import X`` and ``from fastnn import *``, with dir() and the type checkers' view
unchanged. ``import fastnn.book`` (the runner's start) imports none of the costly modules the
book's own start does without.

What is imported is seen in a fresh interpreter (a subprocess), run from a temporary directory so
that it imports the installed fastnn.
"""
import ast
import importlib
import json
import subprocess
import sys
import textwrap
import types

import pytest

import fastnn
import fastnn.reference

# Each package's submodules whose __all__ makes the package's (in this order; fastnn's after
# _core's two names): what the __init__.py files computed from the eagerly imported submodules
# before they became lazy; and the submodules that are attributes of the package, as they were
# when everything was imported
PUBLIC_MODULES = ("datasets", "functions", "layers", "models", "optimizers", "trainer", "util")
SUBMODULES = {
    "fastnn": {"_checks", "_core", "conv", "convnet", "datasets", "functions", "layers", "models",
               "multilayer", "optimizers", "reference", "trainer", "util"},
    "fastnn.reference": {"conv", "convnet", "datasets", "functions", "layers", "models",
                         "multilayer", "optimizers", "trainer", "util"},
}
PACKAGES = pytest.mark.parametrize("package", sorted(SUBMODULES))


def imported_after(tmp_path, code):
    """The modules a fresh interpreter has imported after NumPy and then ``code``, beyond those
    NumPy imported."""
    probe = textwrap.dedent("""
        import json, sys
        import numpy
        before = set(sys.modules)
        {code}
        print(json.dumps(sorted(set(sys.modules) - before)))
    """).format(code=code)
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_import_fastnn_imports_no_submodule(tmp_path):
    assert imported_after(tmp_path, "import fastnn") == {"fastnn", "fastnn._lazy"}
    assert imported_after(tmp_path, "import fastnn.reference") == {
        "fastnn", "fastnn._lazy", "fastnn.reference"}


# Modules that cost milliseconds to import and that the runner's start does without (the book's
# own code starts a script with runpy, ~1 ms after NumPy)
COSTLY = {"argparse", "pathlib", "importlib.abc", "importlib.resources", "traceback", "signal",
          "shutil", "tempfile", "gettext", "locale", "urllib.parse", "numpy.typing", "gzip",
          "json", "threading"}


def test_the_runner_starts_without_fastnn_reference_and_costly_stdlib_modules(tmp_path):
    got = imported_after(tmp_path, "import fastnn.book")
    assert {m for m in got if m.startswith("fastnn")} == {
        "fastnn", "fastnn._lazy", "fastnn.book", "fastnn.book.hook", "fastnn.book.maps", "fastnn.book.runner",
        "fastnn.book.shims"}
    assert not COSTLY & got
    # nor does parsing a plain command line (argparse only explains the others)
    got = imported_after(tmp_path, "from fastnn.book import runner; "
                                   "runner.parse_plain(['--mnist', 'DIR', 'ch03/x.py'])")
    assert not COSTLY & got


@pytest.mark.parametrize("module", sorted(f"{package}.{name}" for package, names in SUBMODULES.items()
                                          for name in names))
def test_each_submodule_imports_first(tmp_path, module):
    # `from fastnn.multilayer import MultiLayerNet` in a fresh interpreter: no import cycle needs
    # another module imported before
    assert module in imported_after(tmp_path, f"import {module}")


def test_the_layers_import_without_numpy_random(tmp_path):
    # numpy.random costs ~18 ms to import; a script that draws nothing does not pay it for fastnn
    got = imported_after(tmp_path, "import fastnn.layers, fastnn.multilayer, fastnn.convnet")
    assert "numpy.random" not in got


def test_a_name_imports_its_own_submodule_only(tmp_path):
    got = imported_after(tmp_path, "import fastnn; fastnn.sigmoid")
    assert "fastnn.functions" in got
    assert not {"fastnn.models", "fastnn.layers", "fastnn.trainer", "fastnn.datasets"} & got
    got = imported_after(tmp_path, "from fastnn import TwoLayerNet")
    assert {"fastnn.models", "fastnn.layers"} <= got
    got = imported_after(tmp_path, "import fastnn.reference as ref; ref.sigmoid")
    assert {m for m in got if m.startswith("fastnn.")} == {
        "fastnn._lazy", "fastnn.reference", "fastnn.reference.functions"}


@PACKAGES
def test_all_is_the_submodules_names_and_each_resolves_to_its_object(package):
    pkg = importlib.import_module(package)
    expected = ["set_num_threads", "get_num_threads"] if package == "fastnn" else []
    for name in PUBLIC_MODULES:
        expected += getattr(pkg, name).__all__
    assert pkg.__all__ == expected
    assert len(set(expected)) == len(expected)
    for module_name in PUBLIC_MODULES:
        module = getattr(pkg, module_name)
        for name in module.__all__:
            assert getattr(pkg, name) is getattr(module, name), name
    assert fastnn.set_num_threads is fastnn._core.set_num_threads
    assert fastnn.get_num_threads is fastnn._core.get_num_threads


@PACKAGES
def test_star_import_binds_exactly_all(tmp_path, package):
    got = subprocess.run(
        [sys.executable, "-c", f"from {package} import *; import json; "
         "print(json.dumps(sorted(n for n in dir() if not n.startswith('__'))))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == sorted(importlib.import_module(package).__all__ + ["json"])


@PACKAGES
def test_submodules_are_attributes(package):
    pkg = importlib.import_module(package)
    for name in SUBMODULES[package]:
        module = getattr(pkg, name)
        assert isinstance(module, types.ModuleType)
        assert module is sys.modules[f"{package}.{name}"]


def test_reference_is_the_module():
    import fastnn.reference as ref
    from fastnn import reference
    assert ref is reference is fastnn.reference
    assert fastnn.reference.sigmoid is sys.modules["fastnn.reference.functions"].sigmoid


@PACKAGES
def test_dir_lists_the_public_names_and_submodules_and_no_private_tables(tmp_path, package):
    pkg = importlib.import_module(package)
    names = dir(pkg)
    assert names == sorted(names)
    assert set(pkg.__all__) | SUBMODULES[package] | {"__all__"} <= set(names)
    assert not {"_HOME", "_SUBMODULES", "_lazy", "TYPE_CHECKING"} & set(names)
    # before any name is used (a fresh interpreter): what dir() showed when everything was
    # imported eagerly, and the two functions of PEP 562
    got = subprocess.run([sys.executable, "-c",
                          f"import {package}, json; print(json.dumps(dir({package})))"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    module_attributes = {"__all__", "__builtins__", "__cached__", "__doc__", "__file__",
                         "__loader__", "__name__", "__package__", "__path__", "__spec__",
                         "__getattr__", "__dir__"}
    if package == "fastnn":
        module_attributes.add("__version__")
    assert json.loads(got.stdout) == sorted(set(pkg.__all__) | SUBMODULES[package]
                                            | module_attributes)


@PACKAGES
def test_an_unknown_name_is_an_attribute_error(package):
    pkg = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such_name'"):
        pkg.no_such_name
    assert not hasattr(pkg, "Embedding")
    with pytest.raises(ImportError, match=f"cannot import name 'no_such_name' from '{package}'"):
        exec(f"from {package} import no_such_name", {})


@PACKAGES
def test_the_type_checkers_view_has_the_same_names(package):
    """The package's TYPE_CHECKING imports (mypy's view) and its table of lazy names (the run
    time's) list the same names from the same submodules."""
    pkg = importlib.import_module(package)
    source = open(pkg.__file__, encoding="utf-8").read()
    block = next(node for node in ast.parse(source).body
                 if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    static, modules = {}, set()
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1
        if node.module is None:
            modules |= {alias.name for alias in node.names}
        else:
            static.update({alias.name: node.module for alias in node.names})
    assert static == pkg._HOME
    assert modules == set(pkg._SUBMODULES) == SUBMODULES[package]


@pytest.mark.slow
def test_mypy_sees_the_names_and_refuses_unknown_ones(tmp_path):
    pytest.importorskip("mypy")
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent("""
        import fastnn as nn
        from fastnn import reference
        reveal_type(nn.TwoLayerNet(4, 3, 2).accuracy)
        reveal_type(reference.sigmoid)  # the reference's hints: x untyped
        nn.no_such_name
    """))
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir",
                             str(tmp_path / "cache"), str(script)],
                            cwd=tmp_path, capture_output=True, text=True)
    out = result.stdout + result.stderr
    lines = out.splitlines()
    assert lines[0].endswith(") -> float\"") and "t: " in lines[0], out  # the signature, not Any
    assert lines[1].endswith('Revealed type is "def (x: Any) -> Any"'), out
    assert lines[2].endswith('error: Module has no attribute "no_such_name"  [attr-defined]'), out
    assert len(lines) == 3, out
    assert 'Module has no attribute "no_such_name"' in out, out
    assert out.count("error:") == 1, out
