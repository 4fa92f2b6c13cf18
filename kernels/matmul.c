/* y[n_seq, n_out] = x[n_seq, n_in] @ w[n_out, n_in].T in float32, with WebAssembly SIMD128.
 *
 * Both operands are read along their rows (w in the engine's (out, in) layout), so every output
 * is a dot product: its f32x4 accumulator holds four interleaved partial sums over k, whose lanes
 * are added at the end. GEMV (one row of x) takes one row of w at a time, so w is streamed once,
 * as one stream.
 * GEMM takes blocks of 4 rows of x by 4 rows of w: 16 accumulators, and each vector loaded serves
 * 4 products. Tails (n_in, n_out or n_seq not a multiple of 4) run on the same kernels.
 *
 * int8 weights (matmul_t_q8, quantize_rows): wq[n_out, n_in] int8 and one float32 scale per row,
 * w ~= wq * scale[:, None]. GEMV (decode) sums in integers: x in blocks of 64 values, each block
 * as int16s under a scale of its own, times the int8 weights widened to int16 (i32x4.dot_i16x8_s),
 * a block's sums exact, then scaled into float32 sums; one row of wq at a time as it streams them
 * once; the row's scale multiplies the finished sum. GEMM (prefill) converts 4 rows of wq at a
 * time into a float scratch block (exact), which all of x then passes in blocks of 2 rows, in the
 * float kernel's order. See
 * kernels/README.md for the quantization rule, the integer sums and their error.
 *
 * Attention (attention_scores, attention_mix): its two products over a key/value cache held in
 * this memory, per head: the scores q . k by the float products above, then the attention
 * weights times the value rows.
 *
 * Memory: this module's own, exported as "memory" and grown on demand by alloc(), a bump
 * allocator; heap_mark() and heap_release() free everything allocated after a mark (scratch).
 * Pointers are byte offsets into that memory, passed as unsigned 32-bit integers. */
#include <wasm_simd128.h>

#define PAGE 65536u

extern unsigned char __heap_base;  /* first byte after the data and the stack (wasm-ld) */
static unsigned char *heap_top = &__heap_base;

static v128_t mac(v128_t acc, v128_t a, v128_t b) {
    return wasm_f32x4_add(acc, wasm_f32x4_mul(a, b));
}

/* [sum of a's lanes, of b's, of c's, of d's], with two rounds of shuffles and adds. */
static v128_t hsum4(v128_t a, v128_t b, v128_t c, v128_t d) {
    v128_t ab = wasm_f32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), wasm_i32x4_shuffle(a, b, 2, 6, 3, 7));
    v128_t cd = wasm_f32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), wasm_i32x4_shuffle(c, d, 2, 6, 3, 7));
    /* ab = [a0+a2, b0+b2, a1+a3, b1+b3], cd likewise */
    return wasm_f32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5), wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}

/* The sum of a's four lanes, in the order hsum4 adds them: (a0 + a2) + (a1 + a3). */
static float lanes_sum(v128_t a) {
    return (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 2))
         + (wasm_f32x4_extract_lane(a, 1) + wasm_f32x4_extract_lane(a, 3));
}

/* a . b over n floats: the sums of dots_1x4, in its order (its lanes added as hsum4 adds them). */
static float dot(const float *a, const float *b, unsigned n) {
    v128_t s = wasm_f32x4_splat(0);
    unsigned k = 0;
    for (; k + 4 <= n; k += 4)
        s = mac(s, wasm_v128_load(a + k), wasm_v128_load(b + k));
    float sum = lanes_sum(s);
    for (; k < n; k++)
        sum += a[k] * b[k];
    return sum;
}

/* [a . b0, a . b1, a . b2, a . b3] for the 4 rows b0.. b3 of n floats that start at b. */
static v128_t dots_1x4(const float *a, const float *b, unsigned n) {
    const float *b0 = b, *b1 = b0 + n, *b2 = b1 + n, *b3 = b2 + n;
    v128_t s0 = wasm_f32x4_splat(0), s1 = s0, s2 = s0, s3 = s0;
    unsigned k = 0;
    for (; k + 4 <= n; k += 4) {
        v128_t ak = wasm_v128_load(a + k);
        s0 = mac(s0, ak, wasm_v128_load(b0 + k));
        s1 = mac(s1, ak, wasm_v128_load(b1 + k));
        s2 = mac(s2, ak, wasm_v128_load(b2 + k));
        s3 = mac(s3, ak, wasm_v128_load(b3 + k));
    }
    v128_t s = hsum4(s0, s1, s2, s3);
    for (; k < n; k++)
        s = mac(s, wasm_f32x4_splat(a[k]), wasm_f32x4_make(b0[k], b1[k], b2[k], b3[k]));
    return s;
}

/* y[i, j] = (x_i . w_j) * scale[j] for `rows` (2 or 4, a constant once inlined) rows of x and
 * 4 rows of w (n floats each); y's rows are m apart. The float kernel runs 4 x 4 blocks with
 * scale = 1 (exact); the int8 kernel 2 x 4 blocks with the 4 rows' scales: 8 accumulators leave
 * V8 registers to spare, measured ~30% faster than 4 x 4 on its GEMM. */
static inline __attribute__((always_inline))
void block_x4(const float *x, const float *w, float *y, unsigned n, unsigned m, v128_t scale, const int rows) {
    v128_t s[4][4];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < 4; j++)
            s[i][j] = wasm_f32x4_splat(0);
    unsigned k = 0;
    for (; k + 4 <= n; k += 4) {
        v128_t xk[4], wk[4];
        for (int i = 0; i < rows; i++)
            xk[i] = wasm_v128_load(x + i * n + k);
        for (int j = 0; j < 4; j++)
            wk[j] = wasm_v128_load(w + j * n + k);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < 4; j++)
                s[i][j] = mac(s[i][j], xk[i], wk[j]);
    }
    for (int i = 0; i < rows; i++) {
        v128_t yi = hsum4(s[i][0], s[i][1], s[i][2], s[i][3]);
        for (unsigned kt = k; kt < n; kt++)
            yi = mac(yi, wasm_f32x4_splat(x[i * n + kt]),
                     wasm_f32x4_make(w[kt], w[n + kt], w[2 * n + kt], w[3 * n + kt]));
        wasm_v128_store(y + i * m, wasm_f32x4_mul(yi, scale));
    }
}

/* y[m] = x[n] @ w[m, n].T one row of w at a time: w is read as one stream, front to back, which
 * the CPU's prefetcher follows best (measured 1.5x faster on cache-cold weights than 4 rows at a
 * time, 4 streams). */
static void gemv(const float *x, const float *w, float *y, unsigned n, unsigned m) {
    for (unsigned j = 0; j < m; j++)
        y[j] = dot(x, w + j * n, n);
}

/* y[t, m] = x[t, n] @ w[m, n].T for t a multiple of 4. The loop over w is outside: its 4 rows
 * stay in cache while all of x passes them. The last m % 4 rows of w go one at a time against
 * 4 rows of x (dots_1x4 with the roles swapped: its lanes are then rows of y). */
static void gemm(const float *x, const float *w, float *y, unsigned t, unsigned n, unsigned m) {
    unsigned j = 0;
    for (; j + 4 <= m; j += 4)
        for (unsigned i = 0; i < t; i += 4)
            block_x4(x + i * n, w + j * n, y + i * m + j, n, m, wasm_f32x4_splat(1), 4);
    for (; j < m; j++)
        for (unsigned i = 0; i < t; i += 4) {
            v128_t yj = dots_1x4(w + j * n, x + i * n, n);
            y[i * m + j] = wasm_f32x4_extract_lane(yj, 0);
            y[(i + 1) * m + j] = wasm_f32x4_extract_lane(yj, 1);
            y[(i + 2) * m + j] = wasm_f32x4_extract_lane(yj, 2);
            y[(i + 3) * m + j] = wasm_f32x4_extract_lane(yj, 3);
        }
}

/* y[n_seq, n_out] = x[n_seq, n_in] @ w[n_out, n_in].T, all C-contiguous float32: whole blocks of
 * 4 rows of x by GEMM, the rest (all of x when n_seq == 1) row by row by GEMV. */
__attribute__((export_name("matmul_t")))
void matmul_t(const float *x, const float *w, float *y, unsigned n_seq, unsigned n_in, unsigned n_out) {
    unsigned blocked = n_seq & ~3u;
    gemm(x, w, y, blocked, n_in, n_out);
    for (unsigned i = blocked; i < n_seq; i++)
        gemv(x + i * n_in, w, y + i * n_out, n_in, n_out);
}

/* ---- attention over a key/value cache ------------------------------------------------------ */

/* A layer's keys and values are held per head as rows: k[h, j] and v[h, j] (d floats each) for
 * positions j < n_ctx, n_ctx * d floats from one head to the next. Only the first n_past rows are
 * read; the softmax between the two products (scale, causal mask) stays with the caller. */

/* s[h, i, j] = q[h, i] . k[h, j] for the n_seq queries q [n_head, n_seq, d] and the first n_past
 * keys: per head, matmul_t's product of q's rows by the key rows (its sums, in its order). */
__attribute__((export_name("attention_scores")))
void attention_scores(const float *q, const float *k, float *s, unsigned n_head, unsigned n_seq, unsigned n_past,
                      unsigned d, unsigned n_ctx) {
    for (unsigned h = 0; h < n_head; h++)
        matmul_t(q + h * n_seq * d, k + h * n_ctx * d, s + h * n_seq * n_past, n_seq, d, n_past);
}

/* o[i] = sum over j < n of p[i, j] * v[j] for t rows of weights p [t, n] and n rows v [n, d]:
 * each row of o is summed in order of j, four lanes at a time, the tail (d % 4) by scalars. */
static void weighted_sum(const float *p, const float *v, float *o, unsigned t, unsigned n, unsigned d) {
    for (unsigned i = 0; i < t; i++) {
        float *oi = o + i * d;
        for (unsigned k = 0; k < d; k++)
            oi[k] = 0;
        for (unsigned j = 0; j < n; j++) {
            float pj = p[i * n + j];
            const float *vj = v + j * d;
            unsigned k = 0;
            for (; k + 4 <= d; k += 4)
                wasm_v128_store(oi + k, mac(wasm_v128_load(oi + k), wasm_f32x4_splat(pj), wasm_v128_load(vj + k)));
            for (; k < d; k++)
                oi[k] += pj * vj[k];
        }
    }
}

/* o[h, i] = sum over j < n_past of p[h, i, j] * v[h, j]: the attention weights p [n_head, n_seq,
 * n_past] times the first n_past value rows of each head, into o [n_head, n_seq, d]. */
__attribute__((export_name("attention_mix")))
void attention_mix(const float *p, const float *v, float *o, unsigned n_head, unsigned n_seq, unsigned n_past,
                   unsigned d, unsigned n_ctx) {
    for (unsigned h = 0; h < n_head; h++)
        weighted_sum(p + h * n_seq * n_past, v + h * n_ctx * d, o + h * n_seq * d, n_seq, n_past, d);
}

/* A 16-byte aligned block of `bytes`, growing the memory if needed; 0 when it cannot grow. */
__attribute__((export_name("alloc")))
void *alloc(unsigned bytes) {
    unsigned long long start = ((unsigned long)heap_top + 15) & ~15ull;
    unsigned long long end = start + bytes;
    unsigned long long size = (unsigned long long)__builtin_wasm_memory_size(0) * PAGE;
    if (end >= 1ull << 32)  /* past the 32-bit address space */
        return 0;
    if (end > size && __builtin_wasm_memory_grow(0, (end - size + PAGE - 1) / PAGE) == (unsigned long)-1)
        return 0;
    heap_top = (unsigned char *)(unsigned long)end;
    return (void *)(unsigned long)start;
}

/* The current end of the heap, to give back to heap_release(). */
__attribute__((export_name("heap_mark")))
void *heap_mark(void) {
    return heap_top;
}

/* Free everything allocated since heap_mark() returned `mark` (the memory itself never shrinks). */
__attribute__((export_name("heap_release")))
void heap_release(void *mark) {
    heap_top = mark;
}

/* ---- int8 weights ------------------------------------------------------------------------ */

/* The GEMV's x in blocks of X_BLOCK values, each block as int16s under a scale of its own:
 * v = rint(x * m) with m = 32767 / max|x| over the block (float32), so that i32x4.dot_i16x8_s
 * (pmaddwd) multiplies them by the int8 weights widened to int16, and x ~= v * inv, inv = max|x|
 * / 32767. A block of zeros, or so small that m would overflow (max|x| < ~1e-34), gets v = 0
 * and inv = 0. Writes v (n) and inv (one per block); returns 1, or 0 when x holds inf or NaN. */
#define X_BLOCK 64

static int quantize_x(const float *x, short *v, float *inv, unsigned n) {
    for (unsigned start = 0, b = 0; start < n; start += X_BLOCK, b++) {
        unsigned end = start + X_BLOCK < n ? start + X_BLOCK : n;
        float amax = 0;
        for (unsigned k = start; k < end; k++) {
            float a = __builtin_fabsf(x[k]);
            amax = a > amax || a != a ? a : amax;
        }
        if (!(amax <= 3.4028235e38f))
            return 0;
        float m = 32767.0f / amax;
        int zero = amax == 0 || m > 3.4028235e38f;
        inv[b] = zero ? 0 : amax / 32767.0f;
        for (unsigned k = start; k < end; k++)
            v[k] = zero ? 0 : (short)__builtin_rintf(x[k] * m);  /* f32.nearest: half to even, as np.rint */
    }
    return 1;
}

/* i32x4 -> f32x4. The empty asm hides where the i32s came from: otherwise clang-14 folds
 * convert(extend(i16s)) into a conversion from i16, which has no SIMD instruction, and emits it as
 * 4 extract_lane + f32.convert + replace_lane. It emits no instruction itself. */
static v128_t to_f32(v128_t i) {
    __asm__("" : "+r"(i));
    return wasm_f32x4_convert_i32x4(i);
}

/* (x . q) * scale for one row q of n int8, x quantized by quantize_x: per block, the products
 * v_k * q_k summed in four i32 lanes (exact: |sum| < 2^31), converted to float32, times the
 * block's inv, added into four float32 lanes; those added by lanes_sum, times scale.
 * Lane i of a step of 16 weights takes k = 2i, 2i+1, 8+2i, 9+2i; a block's tail (n not a
 * multiple of 16) goes to lane 0. */
static float row_q8(const short *v, const float *inv, const signed char *q, float scale, unsigned n) {
    v128_t acc = wasm_f32x4_splat(0);
    for (unsigned k = 0, b = 0; k < n; b++) {
        unsigned end = k + X_BLOCK < n ? k + X_BLOCK : n;
        v128_t s = wasm_i32x4_splat(0);
        for (; k + 16 <= end; k += 16) {
            v128_t w = wasm_v128_load(q + k);
            s = wasm_i32x4_add(s, wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(w), wasm_v128_load(v + k)),
                                                 wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(w), wasm_v128_load(v + k + 8))));
        }
        int tail = 0;
        for (; k < end; k++)
            tail += v[k] * q[k];
        s = wasm_i32x4_add(s, wasm_i32x4_make(tail, 0, 0, 0));
        acc = wasm_f32x4_add(acc, wasm_f32x4_mul(to_f32(s), wasm_f32x4_splat(inv[b])));
    }
    return lanes_sum(acc) * scale;
}

/* y[m] = (x[n] @ q[m, n].T) * scale[m] (see quantize_x, row_q8), with parts (4 n bytes at
 * least) as scratch for x's blocks; one row of q at a time, so q is read as one stream, front
 * to back (measured ~1.6x faster on cache-cold weights than 4 rows at a time). */
static void gemv_q8(const float *x, const signed char *q, const float *scale, float *y, unsigned n, unsigned m,
                    void *parts) {
    float *inv = parts;
    short *v = (short *)(inv + (n + X_BLOCK - 1) / X_BLOCK);
    if (!quantize_x(x, v, inv, n)) {
        for (unsigned j = 0; j < m; j++)
            y[j] = __builtin_nanf("");
        return;
    }
    for (unsigned j = 0; j < m; j++)
        y[j] = row_q8(v, inv, q + j * n, scale[j], n);
}

/* rows int8 rows of n at q, as floats into f (exact). */
static void widen_rows(const signed char *q, float *f, unsigned n, unsigned rows) {
    unsigned k = 0, len = n * rows;
    for (; k + 16 <= len; k += 16) {
        v128_t v = wasm_v128_load(q + k);
        v128_t lo = wasm_i16x8_extend_low_i8x16(v), hi = wasm_i16x8_extend_high_i8x16(v);
        wasm_v128_store(f + k, to_f32(wasm_i32x4_extend_low_i16x8(lo)));
        wasm_v128_store(f + k + 4, to_f32(wasm_i32x4_extend_high_i16x8(lo)));
        wasm_v128_store(f + k + 8, to_f32(wasm_i32x4_extend_low_i16x8(hi)));
        wasm_v128_store(f + k + 12, to_f32(wasm_i32x4_extend_high_i16x8(hi)));
    }
    for (; k < len; k++)
        f[k] = q[k];
}

/* y[t, m] = (x[t, n] @ q[m, n].T) * scale[m] for t >= 2, with f (4 n floats) as scratch: each
 * block of 4 rows of q is widened into f once (exact floats, not times 2^24), then every row of x
 * passes it (pairs of rows of x by block_x4, the last t % 2 by dots_1x4), as the float GEMM
 * passes 4 rows of w. The last m % 4 rows of q are widened one at a time and meet 4 rows of x at
 * a time (dots_1x4 with the roles swapped), then the last t % 4 one by one. The float kernel's
 * sums in its order: y is matmul_t on the rows of q as floats, times the scales. */
static void gemm_q8(const float *x, const signed char *q, const float *scale, float *y, float *f,
                    unsigned t, unsigned n, unsigned m) {
    unsigned j = 0;
    for (; j + 4 <= m; j += 4) {
        v128_t sj = wasm_v128_load(scale + j);
        widen_rows(q + j * n, f, n, 4);
        unsigned i = 0;
        for (; i + 2 <= t; i += 2)
            block_x4(x + i * n, f, y + i * m + j, n, m, sj, 2);
        for (; i < t; i++)
            wasm_v128_store(y + i * m + j, wasm_f32x4_mul(dots_1x4(x + i * n, f, n), sj));
    }
    for (; j < m; j++) {
        widen_rows(q + j * n, f, n, 1);
        unsigned i = 0;
        for (; i + 4 <= t; i += 4) {
            v128_t yj = wasm_f32x4_mul(dots_1x4(f, x + i * n, n), wasm_f32x4_splat(scale[j]));
            y[i * m + j] = wasm_f32x4_extract_lane(yj, 0);
            y[(i + 1) * m + j] = wasm_f32x4_extract_lane(yj, 1);
            y[(i + 2) * m + j] = wasm_f32x4_extract_lane(yj, 2);
            y[(i + 3) * m + j] = wasm_f32x4_extract_lane(yj, 3);
        }
        for (; i < t; i++)
            y[i * m + j] = dot(x + i * n, f, n) * scale[j];
    }
}

/* y[n_seq, n_out] = (x[n_seq, n_in] @ wq[n_out, n_in].T) * scales[n_out], i.e. x @ w.T for
 * w = wq * scales[:, None]; x and y C-contiguous float32, wq C-contiguous int8 (any alignment),
 * scratch 16 n_in bytes, 16-aligned. One row of x by the integer GEMV; more by GEMM. */
__attribute__((export_name("matmul_t_q8")))
void matmul_t_q8(const float *x, const signed char *wq, const float *scales, float *y, void *scratch,
                 unsigned n_seq, unsigned n_in, unsigned n_out) {
    if (n_seq == 1)
        gemv_q8(x, wq, scales, y, n_in, n_out, scratch);
    else
        gemm_q8(x, wq, scales, y, scratch, n_seq, n_in, n_out);
}

/* Quantizes w[n_out, n_in] (float32, finite) row by row into wq (int8) and scales (float32):
 * scale = max|w_row| / 127 and q = round_half_even(w / scale), clamped to [-127, 127], all in
 * float32 (as NumPy computes it on float32 arrays). A row whose scale is 0 (all zeros, or so
 * small that max / 127 underflows) gets q = 0 and scale = 0. w and wq must not overlap. */
__attribute__((export_name("quantize_rows")))
void quantize_rows(const float *w, signed char *wq, float *scales, unsigned n_out, unsigned n_in) {
    for (unsigned j = 0; j < n_out; j++) {
        const float *row = w + j * n_in;
        signed char *out = wq + j * n_in;
        float amax = 0;
        for (unsigned k = 0; k < n_in; k++) {
            float a = __builtin_fabsf(row[k]);
            amax = a > amax ? a : amax;
        }
        float scale = amax / 127.0f;
        scales[j] = scale;
        for (unsigned k = 0; k < n_in; k++) {
            float r = scale == 0 ? 0 : __builtin_rintf(row[k] / scale);  /* f32.nearest: half to even */
            r = r > 127 ? 127 : r < -127 ? -127 : r;
            out[k] = (signed char)r;
        }
    }
}
