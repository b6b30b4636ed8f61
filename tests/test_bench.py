"""fastnn.bench: the table and --json of a quick run of cheap rows, parsed; no speed asserted."""
import json
import re

import numpy as np
import pytest

import fastnn
from fastnn import bench

# cheap rows, one or more per group present in this build (select() drops rows of missing classes)
CHEAP = ["(100, 10)", "784-50-10 batch 100, sparse x, float32", "TwoLayerNetwork 784-50-10",
         "BatchNormalization forward+backward (100, 100)", "Pooling"]
PEAK = "peak memory of a DeepConvNet training step (tracemalloc and RSS)"
FIELDS = {"group", "workload", "book", "fast", "reference", "torch", "jax", "ratio", "bound",
          "bound_kind", "flops", "bytes", "note"}


def table_rows(text):
    """{workload: (book, fastnn, ratio)} of the printed table's timed rows."""
    unit = r"[\d.]+ (?:us|ms|s)"
    pattern = rf"^(.+?) +({unit}) +({unit}) +([\d.]+)x"
    return {m[1]: (m[2], m[3], float(m[4])) for m in re.finditer(pattern, text, re.M)}


def test_list_names_every_group(capsys):
    assert bench.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line.split(None, 1) for line in lines]
    assert [name for _, name in listed] == [w.name for w in bench.select()]
    assert {group for group, _ in listed} >= {"kernels", "models"}
    names = " | ".join(name for _, name in listed)
    for text in ("softmax-CE", "sigmoid", "bias gradient (10000, 1000) float32",
                 "numerical_gradient", "dense x, float64", "dense x, float32", "sparse x, float64",
                 "main job"):
        assert text in names
    for cls, text in (("MultiLayerNet", "784-[100]x4-10"), ("Convolution", "Convolution fwd+bwd"),
                      ("DeepConvNet", "DeepConvNet step"), ("DeepConvNet", PEAK)):
        assert (text in names) == hasattr(fastnn, cls)


def test_quick_run_table_and_json(tmp_path, capsys):
    """The cheap rows in quick mode, with PyTorch's column when it is installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        torch = None
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--json", str(path)] + ([] if torch else ["--no-torch"])
                      + [arg for text in CHEAP for arg in ("-k", text)]) == 0
    out = capsys.readouterr().out
    expected = [w.name for w in bench.select(match=CHEAP)]
    assert len(expected) >= 3
    printed = table_rows(out)
    assert sorted(printed) == sorted(expected)
    assert all(ratio > 0 for _, _, ratio in printed.values())

    data = json.loads(path.read_text())
    assert data["quick"] is True and data["machine"]["threads"] == 1
    machine = data["machine"]
    assert machine["copy_bandwidth"] > 0 and machine["read_bandwidth"] > 0
    assert machine["gemm_rate"]["float64"] > 0 and machine["gemm_rate"]["float32"] > 0
    assert data["versions"]["fastnn"] == fastnn.__version__
    assert data["versions"]["numpy"] == np.__version__
    assert [row["workload"] for row in data["rows"]] == expected
    for row in data["rows"]:
        assert set(row) == FIELDS
        assert row["book"] > 0 and row["fast"] > 0 and row["reference"] > 0
        assert row["ratio"] == pytest.approx(row["book"] / row["fast"])
        assert row["torch"] is None or (torch and row["torch"] > 0)
        assert (row["bound"] is None) == (row["bound_kind"] is None)
        # the printed ratio is the JSON's, to the printed digit
        assert printed[row["workload"]][2] == pytest.approx(row["ratio"], abs=0.051)
    by_name = {row["workload"]: row for row in data["rows"]}
    if torch:
        assert by_name["softmax-CE forward+backward (100, 10)"]["torch"] > 0
    softmax = by_name["softmax-CE forward+backward (100, 10)"]
    assert softmax["bytes"] == 4 * 100 * 10 * 8 and softmax["bound"] > 0
    step = by_name["step 784-50-10 batch 100, sparse x, float32"]
    assert step["flops"] == 4 * 100 * 784 * 50 + 6 * 100 * 50 * 10 and step["bound"] > 0

    # the README's table from two runs (here the same one twice): a line per workload
    table = bench.markdown([path, path]).splitlines()
    assert table[0].startswith("2 run(s), 1 thread(s)")
    for name in expected:
        line = next(line for line in table if line.startswith(f"| {name} |"))
        assert f"| {by_name[name]['ratio']:.1f}x |" in line


@pytest.mark.skipif(not hasattr(fastnn, "DeepConvNet"), reason="no DeepConvNet in this build")
def test_peak_memory_row(tmp_path, capsys):
    """The DeepConvNet memory row, quick (no reference column) and without PyTorch: a positive
    figure per column run, in the table, the JSON and the markdown (no size asserted)."""
    path = tmp_path / "peak.json"
    assert bench.main(["conv", "--quick", "--no-torch", "-k", "peak memory",
                       "--json", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[lines.index("") + 1].startswith(PEAK)
    mib = r"([\d.]+) MiB"
    for label in ("tracemalloc peak", "RSS high-water mark"):
        line = next(line for line in lines if line.startswith(f"  {label} "))
        m = re.fullmatch(rf"  {label} +{mib} +{mib} +([\d.]+)x +{mib}", line)
        assert m and all(float(v) > 0 for v in m.groups())

    [row] = json.loads(path.read_text())["rows"]
    assert row["workload"] == PEAK and row["group"] == "conv" and row["unit"] == "bytes"
    for figure in ("tracemalloc", "rss"):
        values = row[figure]
        assert set(values) == {"book", "fast", "fast_float32", "reference", "torch"}
        assert all(values[c] > 0 for c in ("book", "fast", "fast_float32"))
        assert values["reference"] is None and values["torch"] is None
        assert row["ratio"][figure] == pytest.approx(values["book"] / values["fast"])

    table = bench.markdown([path, path]).splitlines()
    assert sum(line.startswith(f"| {PEAK}: ") for line in table) == 2


def test_peak_child_torch(capsys):
    """A memory row's PyTorch process, run here: its RSS figure, no tracemalloc figure (PyTorch's
    allocator is not traced)."""
    pytest.importorskip("torch")
    bench._peak_child("torch", "float64", False, 1)
    figures = json.loads(capsys.readouterr().out)
    assert figures["tracemalloc"] is None and figures["rss"] >= 0


def test_bad_arguments():
    with pytest.raises(SystemExit) as e:
        bench.main(["nosuchgroup", "--list"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        bench.main(["--threads", "0", "--list"])
    with pytest.raises(ValueError, match="unknown workload groups"):
        bench.run(["conv2"])
