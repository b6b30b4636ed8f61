"""Type information: a user's script, type-checked by mypy against the installed fastnn, sees the
real signatures (py.typed, the hints of the public API, _core.pyi).

Needs mypy (not in the test extra: CI installs it beside the wheel); skipped without it.
"""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """
import numpy as np
import fastnn as nn
from fastnn import _core

(x_train, t_train), (x_test, t_test) = nn.load_digits()
model = nn.TwoLayerNet(64, 50, 10, activation="relu", dtype=np.float32, seed=0)
optimizer = nn.Adam(lr=0.01)
loss: float = model.forward(x_train[:100], t_train[:100])
model.backward()
optimizer.update(model.params, model.grads)
network = nn.TwoLayerNetwork(64, 50, 10)
grads = network.numerical_gradient(x_train[:3], t_train[:3])
nn.SGD(lr=0.1).update(network.params, grads)
y = nn.sigmoid(np.ones(3))
total, probabilities = nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 2]))
layer = nn.Affine(np.ones((3, 2)), np.zeros(2))
dx = layer.backward(layer.forward(np.ones((4, 3))), need_dx=False)
sparse = _core.SparseX()
count: int = sparse.fill(np.ones((2, 3)))
"""

MISTAKES = {  # a line appended to SCRIPT -> what mypy must say about it
    "model.forward(x_train[:100])": 'Missing positional argument "t"',
    'nn.SGD(lr="fast")': 'incompatible type "str"',
    "model.accuracy(x_test, t_test).shape": '"float" has no attribute "shape"',
    "nn.load_digits(normalise=True)": 'Unexpected keyword argument "normalise"',
    "_core.sigmoid_forward(np.ones(3))": 'Missing positional argument "y"',
}


def mypy(tmp_path, source):
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(source))
    # run from tmp_path: the installed fastnn, never the checkout's src/
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir",
                             str(tmp_path / "cache"), str(script)],
                            cwd=tmp_path, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def test_user_script_type_checks_and_mistakes_are_caught(tmp_path):
    pytest.importorskip("mypy")
    status, output = mypy(tmp_path, SCRIPT)
    assert status == 0, output
    mistakes = SCRIPT + "".join(line + "\n" for line in MISTAKES)
    status, output = mypy(tmp_path, mistakes)
    assert status == 1
    for line, message in MISTAKES.items():
        assert message in output, f"{line}: {output}"
