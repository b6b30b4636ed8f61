/* conv_gemm.c: a convolution's two matrix products over blocks of samples, a block per thread
 * (sizes and layouts: conv.h).
 *
 * conv_gemm       y (FN, N * Q) = act(W . im2col_t(x) + b): per block of M samples, im2col_t into
 *                 the thread's col (K, M * Q), gemm_narrow_into's W . col into the block's columns
 *                 of y, bias and act on those columns while they are in the cache. Also the
 *                 flipped-filter input gradient (conv.py).
 * conv_gemm_wgrad dW^T (K, FN) = sum over the blocks of col . dy^T (dy's block columns
 *                 transposed into the thread's dy^T (M * Q, FN)): each thread sums its run of
 *                 consecutive blocks, then the threads' sums are added in thread order.
 *
 * The block keeps col and its product in the L2 cache, and no im2col of the whole batch exists.
 * Each element of y is one gemm_narrow dot product, whatever the blocks and threads; dW's sum is
 * grouped by block and thread (the last bits depend on the thread count). The kernels inside run
 * on their thread alone (threads.c).
 *
 * work: per thread conv_gemm_work (or conv_gemm_wgrad_work) elements, for at most
 * work_threads threads (the Cython entry checks its size).
 */
#include "conv.h"
#include "fastnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int block_threads(ptrdiff_t blocks, ptrdiff_t work_threads)
{
    ptrdiff_t nt = fastnn_get_num_threads();
    nt = nt < blocks ? nt : blocks;
    nt = nt < work_threads ? nt : work_threads;
    return nt > 1 ? (int)nt : 1;
}

ptrdiff_t FN(conv_gemm_work)(ptrdiff_t k, ptrdiff_t m, ptrdiff_t q)
{
    return k * m * q;
}

void FN(conv_gemm)(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, int cnhw,
                   ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p, const real *wm,
                   ptrdiff_t fn, const real *bias, int relu, ptrdiff_t m, real *work,
                   ptrdiff_t work_threads, real *y)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    ptrdiff_t k = c * fh * fw, blocks = (n + m - 1) / m, per = FN(conv_gemm_work)(k, m, q);
    int nt = block_threads(blocks, work_threads);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t bi = 0; bi < blocks; bi++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        real *col = work + t * per;
        ptrdiff_t i0 = bi * m, i1 = i0 + m < n ? i0 + m : n, cols = (i1 - i0) * q;
        FN(im2col_t)(x, n, c, h, w, cnhw, fh, fw, s, p, i0, i1, col);
        FN(gemm_narrow_into)(wm, col, cols, y + i0 * q, n * q, fn, k, cols);
        if (bias)
            FN(conv_bias_act)(y, bias, fn, n * q, i0 * q, i1 * q, relu);
    }
}

ptrdiff_t FN(conv_gemm_wgrad_work)(ptrdiff_t k, ptrdiff_t m, ptrdiff_t q, ptrdiff_t fn)
{
    return k * m * q + m * q * fn + 2 * k * fn;
}

void FN(conv_gemm_wgrad)(const real *x, ptrdiff_t n, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w,
                         int cnhw, ptrdiff_t fh, ptrdiff_t fw, ptrdiff_t s, ptrdiff_t p,
                         const real *dy, ptrdiff_t fn, ptrdiff_t m, real *work,
                         ptrdiff_t work_threads, real *dwt)
{
    ptrdiff_t oh = (h + 2 * p - fh) / s + 1, ow = (w + 2 * p - fw) / s + 1, q = oh * ow;
    ptrdiff_t k = c * fh * fw, blocks = (n + m - 1) / m;
    ptrdiff_t per = FN(conv_gemm_wgrad_work)(k, m, q, fn);
    int nt = block_threads(blocks, work_threads);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        real *col = work + t * per, *dy_t = col + k * m * q, *part = dy_t + m * q * fn;
        real *sum = t == 0 ? dwt : part + k * fn; /* thread 0 sums straight into dW^T */
        ptrdiff_t b0, b1;
        thread_block(t, nt, blocks, &b0, &b1);
        for (ptrdiff_t bi = b0; bi < b1; bi++) {
            ptrdiff_t i0 = bi * m, i1 = i0 + m < n ? i0 + m : n, cols = (i1 - i0) * q;
            real *into = bi == b0 ? sum : part;
            FN(im2col_t)(x, n, c, h, w, cnhw, fh, fw, s, p, i0, i1, col);
            FN(transpose)(dy + i0 * q, fn, cols, n * q, dy_t, fn);
            FN(gemm_narrow)(col, dy_t, into, k, cols, fn, 0);
            if (bi > b0)
                for (ptrdiff_t e = 0; e < k * fn; e++)
                    sum[e] += part[e];
        }
        if (b0 == b1) /* more threads than blocks: nothing to add */
            memset(sum, 0, (size_t)(k * fn) * sizeof *sum);
    }
    for (int t = 1; t < nt; t++) {
        const real *sum = work + t * per + k * m * q + m * q * fn + k * fn;
        for (ptrdiff_t e = 0; e < k * fn; e++)
            dwt[e] += sum[e];
    }
}
