#!/usr/bin/env bash
# The whole test suite on an AddressSanitizer + UndefinedBehaviorSanitizer build of the extension,
# with Cython's boundscheck and wraparound on (CMake option FASTNN_SANITIZE, see CMakeLists.txt).
#
#   tools/sanitize.sh [pytest arguments]       default: the whole suite (tests/), quiet
#
# The build goes into its own virtual environment and build directory, build/sanitize/ (or
# $FASTNN_SANITIZE_DIR), so no other environment is touched; a second run rebuilds incrementally.
# Python itself is not instrumented: the ASan runtime is preloaded into it. CPython's own
# allocations are not leak-checked (detect_leaks=0), and an impossible allocation is a
# MemoryError as without ASan (allocator_may_return_null=1); anything else stops the run at the
# first report (halt_on_error=1). Reports go to build/sanitize/reports/ and are printed at the end; the
# script exits non-zero on any report, from pytest or any process it starts, or on a failed test.
# Environment: PYTHON (interpreter for the venv, default python3), CC (default gcc),
# FASTNN_FUZZ_EXAMPLES (passed on to tests/test_fuzz.py).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${FASTNN_SANITIZE_DIR:-$root/build/sanitize}
export CC=${CC:-gcc}

# the ASan runtime goes first into Python; libstdc++ with it, so that ASan's __cxa_throw
# interceptor finds the real one (C++ extensions such as matplotlib's throw exceptions)
libasan=$("$CC" -print-file-name=libasan.so)
libstdcxx=$("$CC" -print-file-name=libstdc++.so)
if [ ! -e "$libasan" ] || [ ! -e "$libstdcxx" ]; then
    echo "sanitize.sh: no libasan.so or libstdc++.so for $CC (Debian: apt-get install gcc g++)" >&2
    exit 2
fi

start=$SECONDS
if [ ! -x "$dir/venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$dir/venv"
fi
py=$dir/venv/bin/python
# the build requirements of pyproject.toml, read from it (no build isolation: the build dir is
# kept), and the test extra's packages
mapfile -t requires < <("$py" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' "$root/pyproject.toml")
"$py" -m pip install -q "${requires[@]}" cmake ninja
"$py" -m pip install -q --no-build-isolation \
    -Cbuild-dir="$dir/cmake" -Ccmake.build-type=RelWithDebInfo -Cinstall.strip=false \
    -Ccmake.define.FASTNN_SANITIZE=ON "$root[test]"
origin=$("$py" -c 'import importlib.util; print(importlib.util.find_spec("fastnn").origin)')
if [[ "$origin" != "$dir"/* ]]; then
    echo "sanitize.sh: the venv imports fastnn from outside $dir" >&2
    exit 2
fi
echo "sanitize.sh: built in $((SECONDS - start)) s; running the tests"

reports=$dir/reports
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:allocator_may_return_null=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
status=0
# --capture=sys: pytest captures Python's output only, so a report that halts the process is not
# lost in pytest's capture of file descriptor 2; stderr is also kept for the check below
(cd "$root" && LD_PRELOAD="$libasan $libstdcxx" "$py" -m pytest -q -p no:cacheprovider \
    --capture=sys "${@:-tests}") 2> >(tee "$reports/stderr.log" >&2) || status=$?
wait  # for tee
if ! grep -qE "runtime error:|ERROR: AddressSanitizer|AddressSanitizer: CHECK" \
        "$reports/stderr.log"; then
    rm "$reports/stderr.log"
fi

if compgen -G "$reports/*" > /dev/null; then
    for report in "$reports"/*; do
        echo "==== $report"
        cat "$report"
    done
    echo "sanitize.sh: sanitizer reports above" >&2
    [ "$status" -ne 0 ] || status=86
fi
if [ "$status" -ne 0 ]; then  # on success pytest's summary stays the last line
    echo "sanitize.sh: failed (status $status) after $((SECONDS - start)) s" >&2
fi
exit "$status"
