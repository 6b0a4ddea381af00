package dev.attn4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import org.junit.jupiter.api.Test;

class InfoTest {

    @Test
    void reportsBundledOpenBlasWithBatchCalls() {
        NativeTests.requireNative();
        Attn4j.Info info = Attn4j.info();
        System.out.println(info);
        assertEquals("native", info.backend());
        assertTrue(info.openblasFile().getFileName().toString().equals("libopenblas.so.0"), info.toString());
        assertTrue(Files.isRegularFile(info.openblasFile()));
        assertTrue(info.openblasConfig().contains("OpenBLAS 0.3.31"), info.openblasConfig());
        assertTrue(info.openblasConfig().contains("DYNAMIC_ARCH"), info.openblasConfig());
        assertTrue(info.batchGemm(), "cblas_sgemm_batch must be active with 0.3.31");
        assertTrue(info.stridedGemm(), "cblas_sgemm_batch_strided must be active with 0.3.31");
        assertTrue(info.nativeLibrary().getFileName().toString().equals("libattn4j.so"), info.toString());
        assertTrue(info.nativeIsa().matches("avx512|avx2|scalar"), info.nativeIsa());
        assertTrue(!info.openblasCore().isBlank());
        assertTrue(info.toString().contains("GEMM batch:       cblas_sgemm_batch"), info.toString());
    }

    @Test
    void threadCountIsConfigurable() {
        NativeTests.requireNative();
        assertEquals(1, Attn4j.numThreads(), "the default is one OpenBLAS thread per call");
        try {
            Attn4j.setNumThreads(2);
            assertEquals(2, Attn4j.numThreads());
            assertEquals(2, Attn4j.info().threads());
        } finally {
            Attn4j.setNumThreads(1);
        }
        var e = assertThrows(IllegalArgumentException.class, () -> Attn4j.setNumThreads(0));
        assertTrue(e.getMessage().contains("threads must be >= 1, but is 0"), e.getMessage());
    }
}
