package dev.attn4j.internal.backend;

/**
 * The dropout draw shared by the native kernel ({@code attn4j_dropout_f32}) and the
 * Java reference, bit for bit: a pure function of (seed, stream, index), so that a
 * layer's dropout is reproducible for a given seed and call sequence (each call takes
 * the next stream number) and needs no shared random state between threads.
 */
public final class Dropout {
    private Dropout() {}

    static long mix(long z) {
        z ^= z >>> 30;
        z *= 0xBF58476D1CE4E5B9L;
        z ^= z >>> 27;
        z *= 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return z;
    }

    /** The uniform in [0, 1) (24 bits) drawn for element {@code index}. */
    public static float uniform(long seed, long stream, long index) {
        long h = mix(seed ^ mix(stream * 0x9E3779B97F4A7C15L + index));
        return (float) (h >>> 40) * 0x1.0p-24f;
    }

    /** Whether element {@code index} survives dropout with {@code rate}. */
    public static boolean keep(long seed, long stream, long index, float rate) {
        return uniform(seed, stream, index) >= rate;
    }
}
