/* numgrad_twolayer.c: the two-layer models' numerical gradient in one call
 * (twolayer_numerical_gradient in _core_numgrad.pxi; float64 only).
 *
 * What the book's element-by-element central difference computes,
 *     g = (loss(p + h) - loss(p - h)) / 2h   for every parameter p,
 * without recomputing the network: moving W1[i, j] moves a1[n, j] by x[n, i] * d for the rows
 * with x[n, i] != 0 only (MNIST is ~80% zeros), hence z1[n, j] by dz, hence every score of row n
 * by dz * W2[j, k]; moving W2[j, k] moves one score per row. With E[n, k] = exp(s[n, k] - max_k s)
 * from the unperturbed network, a moved score costs one exp: exp(s' - max) = E * exp(ds).
 * Rows that do not move cancel exactly in loss(+) - loss(-), as they do in the book's loop, so
 *     g = sum over moved rows of (L_n(+) - L_n(-)) / N / 2h,
 * and L_n(+) - L_n(-) = log q_n with q_n = (y_n(-) + 1e-7) / (y_n(+) + 1e-7): one log per
 * parameter of a product of q_n, all close to 1. The perturbation is the book's: p + h stored
 * in the parameter's dtype (f32 != 0: rounded to float32), so d = stored - p, divided by 2h.
 * Everything is float64.
 */
#include <math.h>
#include <stdlib.h>

#include "act.h"
#include "fastnn.h"
#include "vexp.h"

#ifndef FASTNN_REAL_F32

struct net {
    ptrdiff_t n, in, hid, out;
    const int64_t *t;
    const double *ET;  /* (out, n) exp(s - max) of the unperturbed scores, transposed */
    const double *S;   /* (n) row sums of E */
    const double *Et;  /* (n) E[n, t_n] */
    int relu, f32;
    double h;
};

static inline double perturbed(double p, double step, int f32)
{
    double v = p + step;
    return f32 ? (double)(float)v : v;
}

/* log prod q over a run of factors; refolds into the sum before the product could leave range */
static double log_product(const double *q, ptrdiff_t r)
{
    double sum = 0, prod = 1;
    for (ptrdiff_t l = 0; l < r; l++) {
        prod *= q[l];
        if (!(prod > 1e-100 && prod < 1e100)) {
            sum += log(prod);
            prod = 1;
        }
    }
    return sum + log(prod);
}

/* The rows one input moves, packed contiguously (so the lane loops below vectorise without
 * gathers): xv[l] = x[row, i], t[l], E[k * r + l], and a1, z1 as (hid, r). */
struct packed {
    ptrdiff_t r;
    double *xv, *E, *a1, *z1;
    int64_t *t;
};

static void pack_rows(const struct net *net, const int64_t *rows, const double *xv, ptrdiff_t r,
                      const double *a1, const double *z1, struct packed *pk)
{
    pk->r = r;
    for (ptrdiff_t l = 0; l < r; l++) {
        ptrdiff_t row = rows[l];
        pk->xv[l] = xv[l];
        pk->t[l] = net->t[row];
        for (ptrdiff_t k = 0; k < net->out; k++)
            pk->E[k * r + l] = net->ET[k * net->n + row];
        for (ptrdiff_t j = 0; j < net->hid; j++) {
            pk->a1[j * r + l] = a1[row * net->hid + j];
            pk->z1[j * r + l] = z1[row * net->hid + j];
        }
    }
}

/* exp(u) for |u| <= 1e-3: Taylor to u^5, whose remainder u^6 / 720 < 2e-21 is far below an ulp.
 * A perturbation of h = 1e-4 moves a score by a few 1e-5 at most for the usual weights, so this
 * replaces nearly every exp of the numerical gradient. */
static inline double exp_small(double u)
{
    return 1 + u * (1 + u * (1.0 / 2 + u * (1.0 / 6 + u * (1.0 / 24 + u * (1.0 / 120)))));
}

/* Score k of every packed row moved by dz * w (dz: dzp, resp. dzm): adds exp(s' - max) to the
 * row sums sp, sm and keeps it in tp, tm where k is the label. small: every |dz * w| <= 1e-3.
 * A function of its own, with restrict arguments, so that GCC vectorises it. */
static FASTNN_CLONES void add_score(ptrdiff_t r, int64_t k, double w, int small,
                                    const double *restrict E, const int64_t *restrict t,
                                    const double *restrict dzp, const double *restrict dzm,
                                    double *restrict sp, double *restrict sm, double *restrict tp,
                                    double *restrict tm)
{
    double *restrict ep = tm + r, *restrict em = ep + r; /* two more lanes of scratch */
    if (small) /* two loops, not one with a select: a select would evaluate both exps */
        for (ptrdiff_t l = 0; l < r; l++) {
            ep[l] = E[l] * exp_small(dzp[l] * w);
            em[l] = E[l] * exp_small(dzm[l] * w);
        }
    else
        for (ptrdiff_t l = 0; l < r; l++) {
            ep[l] = E[l] * vexp(dzp[l] * w);
            em[l] = E[l] * vexp(dzm[l] * w);
        }
    for (ptrdiff_t l = 0; l < r; l++) {
        sp[l] += ep[l];
        sm[l] += em[l];
        tp[l] = t[l] == k ? ep[l] : tp[l];
        tm[l] = t[l] == k ? em[l] : tm[l];
    }
}

/* Moving hidden unit j's pre-activation by xv[l] * dp (resp. dm) in the packed rows:
 * returns sum_l L(+) - L(-). scratch holds 8 r doubles. */
static FASTNN_CLONES double hidden_unit_delta(const struct net *net, const struct packed *pk,
                                              ptrdiff_t j, double dp, double dm, const double *W2,
                                              double *scratch)
{
    ptrdiff_t r = pk->r;
    double *restrict dzp = scratch, *restrict dzm = dzp + r, *restrict sp = dzm + r;
    double *restrict sm = sp + r, *restrict tp = sm + r, *restrict tm = tp + r;
    const double *a1 = pk->a1 + j * r, *z1 = pk->z1 + j * r, *xv = pk->xv;
    /* an infinite pre-activation (an infinite pixel) stays infinite when the weight moves: its
       unit does not move (the book's loop recomputes x W1' = inf too); a1 + x d would be NaN */
    if (net->relu)
        for (ptrdiff_t l = 0; l < r; l++) {
            double ap = a1[l] + xv[l] * dp, am = a1[l] + xv[l] * dm;
            int finite = a1[l] - a1[l] == 0;
            dzp[l] = finite ? relu_of(ap) - z1[l] : 0;
            dzm[l] = finite ? relu_of(am) - z1[l] : 0;
        }
    else
        for (ptrdiff_t l = 0; l < r; l++) {
            int finite = a1[l] - a1[l] == 0;
            dzp[l] = finite ? vsigmoid(a1[l] + xv[l] * dp) - z1[l] : 0;
            dzm[l] = finite ? vsigmoid(a1[l] + xv[l] * dm) - z1[l] : 0;
        }
    double dzmax = 0;
    for (ptrdiff_t l = 0; l < r; l++) {
        sp[l] = sm[l] = tp[l] = tm[l] = 0;
        double a = fabs(dzp[l]) > fabs(dzm[l]) ? fabs(dzp[l]) : fabs(dzm[l]);
        dzmax = a > dzmax ? a : dzmax;
    }
    for (int64_t k = 0, out = net->out; k < out; k++) {
        double w = W2[j * out + k];
        add_score(r, k, w, dzmax * fabs(w) <= 1e-3, pk->E + k * r, pk->t, dzp, dzm, sp, sm, tp, tm);
    }
    for (ptrdiff_t l = 0; l < r; l++) /* q, into dzp */
        dzp[l] = (tm[l] / sm[l] + 1e-7) / (tp[l] / sp[l] + 1e-7);
    return log_product(dzp, r);
}

/* Moving score k of every row by zk[n] * dp (resp. dm): returns sum_n L(+) - L(-). */
static FASTNN_CLONES double score_delta(const struct net *net, ptrdiff_t k, const double *zk,
                                        double dp, double dm, double *q)
{
    const double *E = net->ET + k * net->n;
    for (ptrdiff_t n = 0; n < net->n; n++) {
        double ep = E[n] * vexp(zk[n] * dp), em = E[n] * vexp(zk[n] * dm);
        double rest = net->S[n] - E[n];
        int hit = net->t[n] == k;
        double yp = (hit ? ep : net->Et[n]) / (rest + ep), ym = (hit ? em : net->Et[n]) / (rest + em);
        q[n] = (ym + 1e-7) / (yp + 1e-7);
    }
    return log_product(q, net->n);
}

/* Column i of W1 (i == in: the bias b1, every row with x = 1): pack the rows input i moves,
 * then every hidden unit j. scratch: see scratch_size. */
static void input_gradient(const struct net *net, ptrdiff_t i, const ptrdiff_t *colptr,
                           const int64_t *csc_rows, const double *csc_vals, const int64_t *all_rows,
                           const double *ones, const double *a1, const double *z1,
                           const double *W1, const double *b1, const double *W2, double *gW1,
                           double *gb1, double *scratch)
{
    double scale = 1.0 / (double)net->n / (2 * net->h);
    int bias = i == net->in;
    ptrdiff_t p = bias ? 0 : colptr[i], r = bias ? net->n : colptr[i + 1] - p;
    double *out = bias ? gb1 : gW1 + i * net->hid;
    const double *param = bias ? b1 : W1 + i * net->hid;
    if (r == 0) { /* nothing moves: the book's loop computes loss - loss = 0 */
        for (ptrdiff_t j = 0; j < net->hid; j++)
            out[j] = 0;
        return;
    }
    ptrdiff_t n = net->n;
    struct packed pk = {0, scratch, scratch + n, scratch + n * (1 + net->out),
                        scratch + n * (1 + net->out + net->hid),
                        (int64_t *)(scratch + n * (1 + net->out + 2 * net->hid))};
    pack_rows(net, bias ? all_rows : csc_rows + p, bias ? ones : csc_vals + p, r, a1, z1, &pk);
    double *lanes = scratch + n * (2 + net->out + 2 * net->hid);
    for (ptrdiff_t j = 0; j < net->hid; j++) {
        double w = param[j];
        double dp = perturbed(w, net->h, net->f32) - w, dm = perturbed(w, -net->h, net->f32) - w;
        out[j] = hidden_unit_delta(net, &pk, j, dp, dm, W2, lanes) * scale;
    }
}

/* doubles of scratch per thread: the packed rows and the lane arrays */
static size_t scratch_size(ptrdiff_t n, ptrdiff_t hid, ptrdiff_t out)
{
    return (size_t)(n * (2 + out + 2 * hid) + 8 * n);
}

/* Returns FASTNN_OK, the first row with a bad label, or FASTNN_NO_MEMORY (real.h). */
ptrdiff_t twolayer_numerical_gradient(const double *x, const int64_t *t, const double *W1,
                                      const double *b1, const double *W2, const double *b2,
                                      const double *a1, const double *z1, const double *s,
                                      ptrdiff_t n, ptrdiff_t in, ptrdiff_t hid, ptrdiff_t out,
                                      int relu, int f32, double h, double *gW1, double *gb1,
                                      double *gW2, double *gb2)
{
    for (ptrdiff_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= out)
            return i;

    ptrdiff_t nnz = 0;
    for (ptrdiff_t i = 0; i < n * in; i++)
        nnz += x[i] != 0;
    double *ET = malloc(sizeof(double) * (size_t)(out * n + 3 * n + hid * n + nnz));
    ptrdiff_t *colptr = malloc(sizeof(ptrdiff_t) * (size_t)(in + 1));
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)(nnz + n));
    if (!ET || !colptr || !rows) {
        free(ET);
        free(colptr);
        free(rows);
        return FASTNN_NO_MEMORY;
    }
    double *S = ET + out * n, *Et = S + n, *ones = Et + n, *z1T = ones + n, *vals = z1T + hid * n;
    int64_t *all_rows = rows + nnz;

    /* the unperturbed softmax: E = exp(s - max), transposed, with its row sums */
    for (ptrdiff_t i = 0; i < n; i++) {
        const double *si = s + i * out;
        double m = si[0], sum = 0;
        for (ptrdiff_t k = 1; k < out; k++)
            m = si[k] > m ? si[k] : m;
        for (ptrdiff_t k = 0; k < out; k++) {
            double e = vexp(si[k] - m);
            ET[k * n + i] = e;
            sum += e;
        }
        S[i] = sum;
        Et[i] = ET[t[i] * n + i];
        ones[i] = 1;
        all_rows[i] = i;
        for (ptrdiff_t j = 0; j < hid; j++)
            z1T[j * n + i] = z1[i * hid + j];
    }
    /* x as compressed sparse columns: the rows each input i moves */
    for (ptrdiff_t i = 0; i <= in; i++)
        colptr[i] = 0;
    for (ptrdiff_t r = 0; r < n; r++)
        for (ptrdiff_t i = 0; i < in; i++)
            colptr[i + 1] += x[r * in + i] != 0;
    for (ptrdiff_t i = 0; i < in; i++)
        colptr[i + 1] += colptr[i];
    for (ptrdiff_t r = 0; r < n; r++) /* row-major fill keeps each column's rows ascending */
        for (ptrdiff_t i = 0; i < in; i++)
            if (x[r * in + i] != 0) {
                ptrdiff_t p = colptr[i]++;
                rows[p] = r;
                vals[p] = x[r * in + i];
            }
    for (ptrdiff_t i = in; i > 0; i--) /* the fill advanced each start to the next column's */
        colptr[i] = colptr[i - 1];
    colptr[0] = 0;

    struct net net = {n, in, hid, out, t, ET, S, Et, relu, f32, h};
    double scale = 1.0 / (double)n / (2 * h);
    int failed = 0;
#pragma omp parallel num_threads(fastnn_get_num_threads()) if (n * in * hid >= FASTNN_PARALLEL_MIN)
    {
        double *scratch = malloc(sizeof(double) * scratch_size(n, hid, out));
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (ptrdiff_t i = 0; i <= in; i++)
            if (scratch)
                input_gradient(&net, i, colptr, rows, vals, all_rows, ones, a1, z1, W1, b1, W2,
                               gW1, gb1, scratch);
#pragma omp for schedule(dynamic)
        for (ptrdiff_t jk = 0; jk < (hid + 1) * out; jk++) {
            ptrdiff_t j = jk / out, k = jk % out;
            const double *p = j < hid ? W2 + j * out + k : b2 + k; /* j == hid: the bias b2 */
            const double *zk = j < hid ? z1T + j * n : ones;
            double dp = perturbed(*p, h, f32) - *p, dm = perturbed(*p, -h, f32) - *p;
            double g = scratch ? score_delta(&net, k, zk, dp, dm, scratch) * scale : 0;
            if (j < hid)
                gW2[j * out + k] = g;
            else
                gb2[k] = g;
        }
        free(scratch);
    }
    free(ET);
    free(colptr);
    free(rows);
    return failed ? FASTNN_NO_MEMORY : FASTNN_OK;
}
#endif

