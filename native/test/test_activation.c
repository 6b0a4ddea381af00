/*
 * test_activation.c - attn4j_bias_act_f32 through the shared library.
 *
 * Two kinds of truth:
 *  - golden values computed in Python with numpy 2.4 / scipy 1.17, from the float32
 *    formulas of Keras 3's numpy backend (keras/src/backend/numpy/nn.py), so a
 *    misreading of Keras shared by the library and this file would still show;
 *  - a reference written here from the contract in attn4j.h, the same float32
 *    operations with exp and tanh in double rounded to float (correctly rounded
 *    but for double rounding), over sizes around the vector widths and a sweep
 *    of float bit patterns.
 * LINEAR, RELU and GELU must agree bit for bit (NaN: any NaN). TANH may be 2 ulp
 * from tanh. SIGMOID and SILU must be exactly what their float32 formula gives
 * for some e within 2 ulp of exp(-v) (attn4j.h): the formula is monotone in e, so
 * the result must lie between the formula at e - 2 ulp and at e + 2 ulp. That is
 * the real contract; a flat ulp bound is not, because the formula amplifies the
 * exp error where 1 + e rounds to a spacing of 2 or more (v < -16.6) and where the
 * sigmoid is subnormal before SILU multiplies it by v (v near -88): 6 ulp there
 * from an exp 1 ulp off. The largest distances from the formula with a correctly
 * rounded exp are printed at the end.
 *
 * Runs under ATTN4J_ISA=scalar|avx2|avx512 (ctest adds it three times).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"
#define TEST_RNG_XORSHIFT64STAR
#include "test_util.h"

/* attn4j.h: exp and tanh within 2 ulp. */
#define ULP_TOL 2

static const char *act_names[] = {"linear", "sigmoid", "relu", "tanh", "gelu", "silu"};

/* ---- The contract of attn4j.h ----------------------------------------------------------- */

static float sigmoid_ref(float v)
{
    const float e = (float)exp(-(double)v); /* +inf when it overflows float */
    return 1.0f / (1.0f + e);
}

static float act_ref(float v, int32_t act)
{
    switch (act) {
    case ATTN4J_ACT_SIGMOID:
        return sigmoid_ref(v);
    case ATTN4J_ACT_RELU:
        if (isnan(v))
            return v;
        return v > 0.0f ? v : 0.0f;
    case ATTN4J_ACT_TANH:
        return (float)tanh((double)v);
    case ATTN4J_ACT_GELU: {
        const float sqrt2 = (float)sqrt(2.0);
        const float t = v / sqrt2;
        const float e = (float)erf((double)t);
        return (v * (e + 1.0f)) / 2.0f;
    }
    case ATTN4J_ACT_SILU:
        return v * sigmoid_ref(v);
    default:
        return v;
    }
}

static int exact_act(int32_t act)
{
    return act == ATTN4J_ACT_LINEAR || act == ATTN4J_ACT_RELU || act == ATTN4J_ACT_GELU;
}

static int64_t max_ulp[6];

/* e moved by k ulps towards +inf (k > 0) or towards 0 (k < 0), staying in
 * [0, +inf]. */
static float step_ulps(float e, int k)
{
    for (; k > 0; --k)
        e = nextafterf(e, INFINITY);
    for (; k < 0 && e > 0.0f; ++k)
        e = nextafterf(e, 0.0f);
    return e;
}

/* SIGMOID / SILU of v with the given value of exp(-v), in float32. */
static float from_exp(float v, float e, int32_t act)
{
    const float sig = 1.0f / (1.0f + e);
    return act == ATTN4J_ACT_SILU ? v * sig : sig;
}

/* Is a between b and c (either order), as floats ordered by value? */
static int between(float a, float b, float c)
{
    return b <= c ? b <= a && a <= c : c <= a && a <= b;
}

/* got against the contract for v: NaN for NaN; otherwise the same bits (exact
 * activations), within ULP_TOL of tanh, or the SIGMOID / SILU formula for an exp
 * within ULP_TOL of exp(-v). Zeros: the sign must match too. */
static int agrees(float v, float got, int32_t act)
{
    const float want = act_ref(v, act);
    if (isnan(want))
        return isnan(got);
    if (exact_act(act))
        return to_bits(got) == to_bits(want);
    if (isnan(got) || signbit(got) != signbit(want))
        return 0;
    const int64_t d = ulp_distance(got, want);
    if (d > max_ulp[act])
        max_ulp[act] = d;
    if (act == ATTN4J_ACT_TANH)
        return d <= ULP_TOL;
    const float e = (float)exp(-(double)v);
    return between(got, from_exp(v, step_ulps(e, -ULP_TOL), act), from_exp(v, step_ulps(e, ULP_TOL), act));
}

/* Golden values: the same, with numpy's result as `want` (numpy's exp and tanh
 * are not correctly rounded either): exact activations bit for bit, the others
 * within 2 * ULP_TOL. */
static int agrees_golden(float got, float want, int32_t act)
{
    if (isnan(want))
        return isnan(got);
    if (exact_act(act))
        return to_bits(got) == to_bits(want);
    return !isnan(got) && signbit(got) == signbit(want) && ulp_distance(got, want) <= 2 * ULP_TOL;
}

/* ---- Golden values from Python ------------------------------------------------------------ */

/*
 * numpy 2.4.6 / scipy 1.17.1, float32 throughout:
 *   sigmoid = f32(1) / (f32(1) + np.exp(-x));  silu = x * sigmoid
 *   gelu = x * (scipy.special.erf(x / np.sqrt(2).astype(f32)) + 1).astype(f32) / f32(2)
 *   tanh = np.tanh(x);  relu = np.maximum(x, f32(0))
 */
enum { N_GOLDEN = 18 };
static const float golden_x[N_GOLDEN] = {
    -0x1.9p+6f, -0x1.4p+4f, -0x1.6p+2f, -0x1p+0f, -0x1p-1f, -0x1.0624dep-10f, 0x0p+0f,
    0x1.0624dep-10f, 0x1p-1f, 0x1p+0f, 0x1.ap+1f, 0x1.4p+3f, 0x1.1p+4f, 0x1.6p+6f, 0x1.9p+6f,
    -0x1.5ep+6f, 0x1.16c2p-133f, -0x1.05564p-128f};
static const float golden_sigmoid[N_GOLDEN] = {
    0x0p+0f, 0x1.1b4864p-29f, 0x1.0abd94p-8f, 0x1.13656p-2f, 0x1.829a06p-2f, 0x1.ffbe78p-2f, 0x1p-1f,
    0x1.0020c4p-1f, 0x1.3eb2fep-1f, 0x1.764d5p-1f, 0x1.ece37cp-1f, 0x1.fffa0cp-1f, 0x1p+0f, 0x1p+0f,
    0x1p+0f, 0x1.b2caecp-127f, 0x1p-1f, 0x1p-1f};
static const float golden_silu[N_GOLDEN] = {
    -0x0p+0f, -0x1.621a7cp-25f, -0x1.6ec4acp-6f, -0x1.13656p-2f, -0x1.829a06p-3f, -0x1.06035p-11f,
    0x0p+0f, 0x1.06466cp-11f, 0x1.3eb2fep-2f, 0x1.764d5p-1f, 0x1.9078d4p+1f, 0x1.3ffc48p+3f, 0x1.1p+4f,
    0x1.6p+6f, 0x1.9p+6f, -0x1.2938b8p-120f, 0x1.16c2p-134f, -0x1.05564p-129f};
static const float golden_gelu[N_GOLDEN] = {
    -0x0p+0f, -0x0p+0f, -0x1.6p-23f, -0x1.44ed0cp-3f, -0x1.3bf144p-3f, -0x1.05ef52p-11f, 0x0p+0f,
    0x1.065a6ap-11f, 0x1.62075ep-2f, 0x1.aec4bcp-1f, 0x1.9fc28cp+1f, 0x1.4p+3f, 0x1.1p+4f, 0x1.6p+6f,
    0x1.9p+6f, -0x0p+0f, 0x1.16c2p-134f, -0x1.05564p-129f};
static const float golden_tanh[N_GOLDEN] = {
    -0x1p+0f, -0x1p+0f, -0x1.fffbap-1f, -0x1.85efacp-1f, -0x1.d9354p-2f, -0x1.0624d8p-10f, 0x0p+0f,
    0x1.0624d8p-10f, 0x1.d9354p-2f, 0x1.85efacp-1f, 0x1.fe767ap-1f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f,
    -0x1p+0f, 0x1.16c2p-133f, -0x1.05564p-128f};
static const float golden_relu[N_GOLDEN] = {
    0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x1.0624dep-10f, 0x1p-1f, 0x1p+0f,
    0x1.ap+1f, 0x1.4p+3f, 0x1.1p+4f, 0x1.6p+6f, 0x1.9p+6f, 0x0p+0f, 0x1.16c2p-133f, 0x0p+0f};

static void check_golden(int32_t act, const float *want)
{
    /* 18 values: one vector of 16 (8) and a tail. */
    float x[N_GOLDEN];
    memcpy(x, golden_x, sizeof x);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, 1, N_GOLDEN, NULL, act), ATTN4J_OK);
    for (int k = 0; k < N_GOLDEN; ++k)
        CHECK_MSG(agrees_golden(x[k], want[k], act), "golden %s(%a) = %a, numpy %a", act_names[act],
                  (double)golden_x[k], (double)x[k], (double)want[k]);

    /* Also as x + bias = golden_x, with a bias that makes the sum exact. */
    float bias[N_GOLDEN];
    for (int k = 0; k < N_GOLDEN; ++k) {
        bias[k] = k % 3 == 0 ? 0.0f : 0.5f;
        x[k] = golden_x[k] - bias[k];
        if (x[k] + bias[k] != golden_x[k] || (golden_x[k] == 0.0f && signbit(golden_x[k]))) {
            bias[k] = 0.0f; /* not exactly representable: no bias there */
            x[k] = golden_x[k];
        }
    }
    CHECK_INT_EQ(attn4j_bias_act_f32(x, 1, N_GOLDEN, bias, act), ATTN4J_OK);
    for (int k = 0; k < N_GOLDEN; ++k)
        CHECK_MSG(agrees_golden(x[k], want[k], act), "golden with bias %s(%a) = %a, numpy %a", act_names[act],
                  (double)golden_x[k], (double)x[k], (double)want[k]);
}

static void test_golden(void)
{
    check_golden(ATTN4J_ACT_LINEAR, golden_x);
    check_golden(ATTN4J_ACT_SIGMOID, golden_sigmoid);
    check_golden(ATTN4J_ACT_RELU, golden_relu);
    check_golden(ATTN4J_ACT_TANH, golden_tanh);
    check_golden(ATTN4J_ACT_GELU, golden_gelu);
    check_golden(ATTN4J_ACT_SILU, golden_silu);
}

/* ---- Special values, from the formulas in IEEE float32 (and numpy) ------------------------- */

static void check_one(float v, int32_t act, float want)
{
    /* In lane 3 of a row of 19, so both the vector body and the tail see it. */
    float x[19];
    for (int k = 0; k < 19; ++k)
        x[k] = 1.0f;
    x[3] = v;
    x[17] = v;
    CHECK_INT_EQ(attn4j_bias_act_f32(x, 1, 19, NULL, act), ATTN4J_OK);
    const int ok = isnan(want) ? isnan(x[3]) && isnan(x[17])
                               : to_bits(x[3]) == to_bits(want) && to_bits(x[17]) == to_bits(want);
    CHECK_MSG(ok, "%s(%a) = %a / %a, expected %a", act_names[act], (double)v, (double)x[3],
              (double)x[17], (double)want);
}

static void test_special_values(void)
{
    for (int32_t act = 0; act <= ATTN4J_ACT_SILU; ++act)
        check_one(NAN, act, NAN);
    check_one(INFINITY, ATTN4J_ACT_SIGMOID, 1.0f);
    check_one(-INFINITY, ATTN4J_ACT_SIGMOID, 0.0f);
    check_one(-0.0f, ATTN4J_ACT_SIGMOID, 0.5f);
    check_one(-88.8f, ATTN4J_ACT_SIGMOID, 0.0f); /* exp(88.8) = +inf in float32 */
    check_one(-FLT_MAX, ATTN4J_ACT_SIGMOID, 0.0f);
    check_one(104.0f, ATTN4J_ACT_SIGMOID, 1.0f);
    check_one(FLT_MAX, ATTN4J_ACT_SIGMOID, 1.0f);
    check_one(INFINITY, ATTN4J_ACT_SILU, INFINITY);
    check_one(-INFINITY, ATTN4J_ACT_SILU, NAN); /* -inf * 0 */
    check_one(-100.0f, ATTN4J_ACT_SILU, -0.0f);
    check_one(-0.0f, ATTN4J_ACT_SILU, -0.0f);
    check_one(INFINITY, ATTN4J_ACT_RELU, INFINITY);
    check_one(-INFINITY, ATTN4J_ACT_RELU, 0.0f);
    check_one(-0.0f, ATTN4J_ACT_RELU, 0.0f); /* numpy maximum(-0, 0) = +0 */
    check_one(-FLT_TRUE_MIN, ATTN4J_ACT_RELU, 0.0f);
    check_one(FLT_TRUE_MIN, ATTN4J_ACT_RELU, FLT_TRUE_MIN);
    check_one(INFINITY, ATTN4J_ACT_TANH, 1.0f);
    check_one(-INFINITY, ATTN4J_ACT_TANH, -1.0f);
    check_one(-0.0f, ATTN4J_ACT_TANH, -0.0f);
    check_one(INFINITY, ATTN4J_ACT_GELU, INFINITY);
    check_one(-INFINITY, ATTN4J_ACT_GELU, NAN); /* -inf * (-1 + 1) */
    check_one(-0.0f, ATTN4J_ACT_GELU, -0.0f);
    check_one(-10.0f, ATTN4J_ACT_GELU, -0.0f); /* erf rounds to -1 */
    check_one(FLT_MAX, ATTN4J_ACT_GELU, INFINITY); /* FLT_MAX * 2 overflows before / 2 */
    check_one(INFINITY, ATTN4J_ACT_LINEAR, INFINITY);
    check_one(-0.0f, ATTN4J_ACT_LINEAR, -0.0f);

    /* Bias: inf + -inf = NaN, then every activation gives NaN; NaN bias likewise. */
    for (int32_t act = 0; act <= ATTN4J_ACT_SILU; ++act) {
        float x[10], bias[10];
        for (int k = 0; k < 10; ++k) {
            x[k] = 0.25f;
            bias[k] = 0.5f;
        }
        x[2] = INFINITY;
        bias[2] = -INFINITY;
        bias[9] = NAN;
        CHECK_INT_EQ(attn4j_bias_act_f32(x, 1, 10, bias, act), ATTN4J_OK);
        CHECK_MSG(isnan(x[2]) && isnan(x[9]), "%s: inf + -inf -> %a, x + NaN -> %a", act_names[act],
                  (double)x[2], (double)x[9]);
        CHECK_MSG(agrees(0.75f, x[0], act), "%s(0.25 + 0.5) = %a", act_names[act],
                  (double)x[0]);
    }
}

/* ---- Sizes around the vector widths, with and without a bias -------------------------------- */

static void fill_mixed(float *x, int64_t n, float range)
{
    static const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, FLT_TRUE_MIN, -FLT_MAX,
                                     FLT_MAX, NAN, 100.0f, -100.0f, 1e-30f};
    for (int64_t k = 0; k < n; ++k) {
        const uint64_t r = rng_next();
        if ((r & 15) == 0)
            x[k] = specials[(r >> 8) % (sizeof specials / sizeof specials[0])];
        else
            x[k] = rng_uniform(-range, range);
    }
}

static void test_sizes(void)
{
    static const int64_t rows_list[] = {1, 2, 3, 5};
    static const int64_t cols_list[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100};
    for (size_t a = 0; a < sizeof rows_list / sizeof rows_list[0]; ++a) {
        for (size_t c = 0; c < sizeof cols_list / sizeof cols_list[0]; ++c) {
            const int64_t rows = rows_list[a], cols = cols_list[c], n = rows * cols;
            float *x = malloc((size_t)n * sizeof *x), *got = malloc((size_t)n * sizeof *x);
            float *bias = malloc((size_t)cols * sizeof *bias);
            for (int32_t act = 0; act <= ATTN4J_ACT_SILU; ++act) {
                for (int with_bias = 0; with_bias <= 1; ++with_bias) {
                    fill_mixed(x, n, act == ATTN4J_ACT_LINEAR ? 1e6f : 12.0f);
                    fill_mixed(bias, cols, 3.0f);
                    memcpy(got, x, (size_t)n * sizeof *x);
                    const float *b = with_bias ? bias : NULL;
                    CHECK_INT_EQ(attn4j_bias_act_f32(got, rows, cols, b, act), ATTN4J_OK);
                    int64_t bad = 0;
                    for (int64_t r = 0; r < rows; ++r) {
                        for (int64_t k = 0; k < cols; ++k) {
                            const float v = b ? x[r * cols + k] + b[k] : x[r * cols + k];
                            const float want = act_ref(v, act);
                            const float g = got[r * cols + k];
                            if (!agrees(v, g, act) && ++bad <= 3)
                                CHECK_MSG(0, "rows %lld cols %lld %s bias %d: [%lld,%lld] v %a -> %a, expected %a",
                                          (long long)rows, (long long)cols, act_names[act], with_bias,
                                          (long long)r, (long long)k, (double)v, (double)g, (double)want);
                        }
                    }
                    CHECK_MSG(bad == 0, "rows %lld cols %lld %s bias %d: %lld wrong", (long long)rows,
                              (long long)cols, act_names[act], with_bias, (long long)bad);
                }
            }
            free(x);
            free(got);
            free(bias);
        }
    }
}

/* ---- A sweep of float bit patterns ------------------------------------------------------------ */

/* Every STRIDE-th float of one sign, both signs: every binade from the subnormals
 * to inf, in particular the sigmoid's range where exp(-v) over- and underflows. */
enum { BLOCK = 4093, STRIDE = 997 };

static void sweep(int32_t act)
{
    static float x[BLOCK], y[BLOCK];
    for (int sign = 0; sign <= 1; ++sign) {
        uint64_t u = 0;
        int64_t bad = 0;
        while (u <= 0x7F800000u) {
            int n = 0;
            for (; n < BLOCK && u <= 0x7F800000u; ++n, u += STRIDE)
                x[n] = from_bits((uint32_t)u | (sign ? 0x80000000u : 0u));
            memcpy(y, x, sizeof(float) * (size_t)n);
            CHECK_INT_EQ(attn4j_bias_act_f32(y, 1, n, NULL, act), ATTN4J_OK);
            for (int k = 0; k < n; ++k) {
                const float want = act_ref(x[k], act);
                if (!agrees(x[k], y[k], act) && ++bad <= 3)
                    CHECK_MSG(0, "sweep %s(%a) = %a, expected %a (%lld ulp)", act_names[act], (double)x[k],
                              (double)y[k], (double)want, (long long)ulp_distance(y[k], want));
            }
        }
        CHECK_MSG(bad == 0, "sweep %s sign %d: %lld wrong", act_names[act], sign, (long long)bad);
    }
}

static void test_sweep(void)
{
    for (int32_t act = 0; act <= ATTN4J_ACT_SILU; ++act)
        sweep(act);
}

/* ---- Contract edges --------------------------------------------------------------------------- */

static void test_linear_no_bias_untouched(void)
{
    /* No pass at all: a signalling NaN keeps its bits. */
    float x[21], before[21];
    fill_mixed(before, 21, 5.0f);
    before[4] = from_bits(0x7FA00001u);
    memcpy(x, before, sizeof x);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, 3, 7, NULL, ATTN4J_ACT_LINEAR), ATTN4J_OK);
    CHECK(memcmp(x, before, sizeof x) == 0);
}

static void test_invalid(void)
{
    enum { R = 3, C = 5 };
    float x[R * C], before[R * C], bias[C] = {0};
    fill_mixed(before, R * C, 5.0f);
    memcpy(x, before, sizeof x);
    CHECK_INT_EQ(attn4j_bias_act_f32(NULL, R, C, bias, ATTN4J_ACT_RELU), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, 0, C, bias, ATTN4J_ACT_RELU), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, -1, C, bias, ATTN4J_ACT_RELU), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, R, 0, bias, ATTN4J_ACT_RELU), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, R, INT64_MIN, bias, ATTN4J_ACT_RELU), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, INT64_C(1) << 32, INT64_C(1) << 31, NULL, ATTN4J_ACT_RELU),
                 ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, 1, INT64_MAX, NULL, ATTN4J_ACT_SIGMOID), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, R, C, bias, -1), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, R, C, bias, 6), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, R, C, NULL, 99), ATTN4J_EINVAL);
    /* Also LINEAR without a bias, which would do nothing, checks its arguments. */
    CHECK_INT_EQ(attn4j_bias_act_f32(NULL, R, C, NULL, ATTN4J_ACT_LINEAR), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_bias_act_f32(x, 0, C, NULL, ATTN4J_ACT_LINEAR), ATTN4J_EINVAL);
    CHECK(memcmp(x, before, sizeof x) == 0);
}

int main(void)
{
    rng_seed(0xA5A5F00DCAFEBABEu);
    if (test_should_skip("test_activation"))
        return 77;
    test_golden();
    test_special_values();
    test_sizes();
    test_sweep();
    test_linear_no_bias_untouched();
    test_invalid();
    printf("test_activation: max ulp from the formula with exact exp / tanh: sigmoid %lld, tanh %lld, silu %lld\n",
           (long long)max_ulp[ATTN4J_ACT_SIGMOID], (long long)max_ulp[ATTN4J_ACT_TANH],
           (long long)max_ulp[ATTN4J_ACT_SILU]);
    return test_finish("test_activation");
}
