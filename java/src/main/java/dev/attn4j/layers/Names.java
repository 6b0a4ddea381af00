package dev.attn4j.layers;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/** Keras-style default layer names: "attention", "attention_1", "attention_2", ... per prefix. */
final class Names {
    private static final ConcurrentHashMap<String, AtomicInteger> COUNTERS = new ConcurrentHashMap<>();

    private Names() {}

    static String unique(String prefix) {
        int n = COUNTERS.computeIfAbsent(prefix, p -> new AtomicInteger()).getAndIncrement();
        return n == 0 ? prefix : prefix + "_" + n;
    }
}
