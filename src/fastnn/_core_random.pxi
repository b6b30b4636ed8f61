# NumPy's MT19937 uniform doubles drawn in compiled loops (csrc/mt19937.c), from the state of the
# np.random.MT19937 bit generator itself (the book's global RandomState has one), under its lock.

from cpython.pycapsule cimport PyCapsule_GetPointer

cdef extern from "numpy/random/bitgen.h" nogil:
    ctypedef struct bitgen_t:
        void *state

cdef extern from "fastnn.h" nogil:
    ctypedef struct mt19937_state:
        pass
    Py_ssize_t mt19937_fill "mt19937_random"(mt19937_state *state, double *out, Py_ssize_t n)


def mt19937_random(bit_generator, cnp.ndarray out not None):
    """Fills out (a flat float64 buffer) with bit_generator's next uniform [0, 1) doubles, the
    numbers and the state afterwards those of np.random.Generator(bit_generator).random(out.size);
    bit_generator a np.random.MT19937."""
    # imported here: numpy.random takes ~18 ms to import, which `import fastnn` does not pay
    from numpy.random import MT19937
    if not isinstance(bit_generator, MT19937):
        raise TypeError(f"bit_generator: expected a numpy.random.MT19937, got "
                        f"{type(bit_generator).__name__}")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(out)
    if n == 0:
        _like(out, "out", cnp.NPY_DOUBLE, 0, True)
        return
    cdef double *po = _doubles(out, "out", n, True)
    cdef bitgen_t *bitgen = <bitgen_t *> PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    cdef mt19937_state *state = <mt19937_state *> bitgen.state
    cdef Py_ssize_t status
    with bit_generator.lock:
        with nogil:
            status = mt19937_fill(state, po, n)
    if status != FASTNN_OK:
        raise ValueError("bit_generator: its MT19937 state position is outside [0, 624]")
