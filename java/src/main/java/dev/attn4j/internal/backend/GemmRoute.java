package dev.attn4j.internal.backend;

/** Which OpenBLAS entry point a batch of matrix products goes through. */
public enum GemmRoute {
    /** Let the backend choose (strided batch, else pointer batch, else loop). */
    AUTO,
    /** {@code cblas_sgemm} once per product. */
    LOOP,
    /** One {@code cblas_sgemm_batch} call with pointer arrays. */
    BATCH,
    /** One {@code cblas_sgemm_batch_strided} call. */
    STRIDED
}
