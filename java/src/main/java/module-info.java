/**
 * attn4j: Keras-exact attention layers for the JVM, computed off-heap with OpenBLAS
 * and a small library of fused native kernels, called through the Java 25 Foreign
 * Function and Memory API.
 *
 * <p>Callers must allow native access for this module, e.g.
 * {@code --enable-native-access=dev.attn4j} on the module path or
 * {@code --enable-native-access=ALL-UNNAMED} on the class path.
 */
module dev.attn4j {
    requires com.fasterxml.jackson.databind;
    requires io.jhdf;
    requires java.desktop; // the demo's heatmap PNGs (java.awt.image, javax.imageio)

    exports dev.attn4j;
    exports dev.attn4j.layers;
    exports dev.attn4j.keras;
    exports dev.attn4j.conformance;
}
