/* mt19937.c: NumPy's MT19937 uniform doubles, the same numbers from the same state, faster.
 *
 * Dropout draws its masks from np.random.rand (the book's global RandomState) or from a Generator;
 * with an MT19937 bit generator both make double k from the next two tempered 32-bit outputs a, b
 * as ((a >> 5) 2^26 + (b >> 6)) / 2^53, one call per double (~6 ns). Here the state is
 * regenerated and tempered a block of words at a time in loops GCC vectorises. The state is
 * NumPy's own, advanced exactly as NumPy advances it, so these draws and NumPy's interleave.
 */
#include "fastnn.h"

#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfU
#define MT_UPPER 0x80000000U
#define MT_LOWER 0x7fffffffU

static inline uint32_t twist(uint32_t upper, uint32_t lower, uint32_t far)
{
    uint32_t y = (upper & MT_UPPER) | (lower & MT_LOWER);
    return far ^ (y >> 1) ^ (-(y & 1) & MT_MATRIX_A);
}

/* the next MT19937_N words of the generator, in place (NumPy's mt19937_gen) */
static FASTNN_CLONES void regenerate(uint32_t *key)
{
    int i = 0;
    for (; i < MT19937_N - MT_M; i++)
        key[i] = twist(key[i], key[i + 1], key[i + MT_M]);
    for (; i < MT19937_N - 1; i++)
        key[i] = twist(key[i], key[i + 1], key[i + MT_M - MT19937_N]);
    key[MT19937_N - 1] = twist(key[MT19937_N - 1], key[0], key[MT_M - 1]);
}

static inline uint32_t temper(uint32_t y)
{
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    return y ^ (y >> 18);
}

/* the double of the tempered words a, b: exact, so any evaluation order gives NumPy's */
static inline double to_double(uint32_t a, uint32_t b)
{
    return ((double)(a >> 5) * 67108864.0 + (double)(b >> 6)) / 9007199254740992.0;
}

/* out[0, k) from the 2k words w */
static FASTNN_CLONES void doubles_from(const uint32_t *restrict w, double *restrict out, ptrdiff_t k)
{
    for (ptrdiff_t j = 0; j < k; j++)
        out[j] = to_double(temper(w[2 * j]), temper(w[2 * j + 1]));
}

ptrdiff_t mt19937_random(mt19937_state *state, double *out, ptrdiff_t n)
{
    int p = state->pos;
    if (p < 0 || p > MT19937_N)
        return 0;
    for (ptrdiff_t i = 0; i < n;) {
        if (p == MT19937_N) {
            regenerate(state->key);
            p = 0;
        }
        ptrdiff_t k = (MT19937_N - p) / 2;
        if (k == 0) { /* p == 623: the double's two words straddle a regeneration */
            uint32_t a = temper(state->key[p]);
            regenerate(state->key);
            p = 1;
            out[i++] = to_double(a, temper(state->key[0]));
            continue;
        }
        k = k < n - i ? k : n - i;
        doubles_from(state->key + p, out + i, k);
        p += (int)(2 * k);
        i += k;
    }
    state->pos = p;
    return FASTNN_OK;
}
