/* y[n_seq, n_out] = x[n_seq, n_in] @ w[n_out, n_in].T in float32, with WebAssembly SIMD128.
 *
 * Both operands are read along their rows (w in the engine's (out, in) layout), so every output
 * is a dot product: its f32x4 accumulator holds four interleaved partial sums over k, whose lanes
 * are added at the end. GEMV (one row of x) takes 4 rows of w at a time, so w is streamed once.
 * GEMM takes blocks of 4 rows of x by 4 rows of w: 16 accumulators, and each vector loaded serves
 * 4 products. Tails (n_in, n_out or n_seq not a multiple of 4) run on the same kernels.
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

/* a . b over n floats. */
static float dot(const float *a, const float *b, unsigned n) {
    v128_t s = wasm_f32x4_splat(0);
    unsigned k = 0;
    for (; k + 4 <= n; k += 4)
        s = mac(s, wasm_v128_load(a + k), wasm_v128_load(b + k));
    float sum = wasm_f32x4_extract_lane(s, 0) + wasm_f32x4_extract_lane(s, 1)
              + wasm_f32x4_extract_lane(s, 2) + wasm_f32x4_extract_lane(s, 3);
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

/* y[i, j] = x_i . w_j for 4 rows of x and 4 rows of w (n floats each); y's rows are m apart. */
static void block_4x4(const float *x, const float *w, float *y, unsigned n, unsigned m) {
    v128_t s[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            s[i][j] = wasm_f32x4_splat(0);
    unsigned k = 0;
    for (; k + 4 <= n; k += 4) {
        v128_t xk[4], wk[4];
        for (int i = 0; i < 4; i++) {
            xk[i] = wasm_v128_load(x + i * n + k);
            wk[i] = wasm_v128_load(w + i * n + k);
        }
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                s[i][j] = mac(s[i][j], xk[i], wk[j]);
    }
    for (int i = 0; i < 4; i++) {
        v128_t yi = hsum4(s[i][0], s[i][1], s[i][2], s[i][3]);
        for (unsigned kt = k; kt < n; kt++)
            yi = mac(yi, wasm_f32x4_splat(x[i * n + kt]),
                     wasm_f32x4_make(w[kt], w[n + kt], w[2 * n + kt], w[3 * n + kt]));
        wasm_v128_store(y + i * m, yi);
    }
}

/* y[m] = x[n] @ w[m, n].T: 4 rows of w at a time, then the last m % 4 one by one. */
static void gemv(const float *x, const float *w, float *y, unsigned n, unsigned m) {
    unsigned j = 0;
    for (; j + 4 <= m; j += 4)
        wasm_v128_store(y + j, dots_1x4(x, w + j * n, n));
    for (; j < m; j++)
        y[j] = dot(x, w + j * n, n);
}

/* y[t, m] = x[t, n] @ w[m, n].T for t a multiple of 4. The loop over w is outside: its 4 rows
 * stay in cache while all of x passes them. The last m % 4 rows of w go one at a time against
 * 4 rows of x (dots_1x4 with the roles swapped: its lanes are then rows of y). */
static void gemm(const float *x, const float *w, float *y, unsigned t, unsigned n, unsigned m) {
    unsigned j = 0;
    for (; j + 4 <= m; j += 4)
        for (unsigned i = 0; i < t; i += 4)
            block_4x4(x + i * n, w + j * n, y + i * m + j, n, m);
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
