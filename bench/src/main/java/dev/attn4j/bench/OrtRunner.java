package dev.attn4j.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import dev.attn4j.Tensor;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One ONNX Runtime session on the CPU provider, reading its inputs from and writing its
 * output into attn4j tensors' memory (direct buffers, no copies): intra-op threads as
 * the trial's thread count, one inter-op thread, sequential execution, all graph
 * optimizations.
 */
final class OrtRunner implements AutoCloseable {
    private final OrtSession.SessionOptions options;
    private final OrtSession session;
    private final Map<String, OnnxTensor> inputs = new LinkedHashMap<>();
    private final Map<String, OnnxTensor> outputs;

    OrtRunner(byte[] model, int threads, Map<String, Tensor> inputTensors, String outputName, Tensor output)
            throws OrtException {
        this(model, threads, inputTensors, Map.of(outputName, output));
    }

    /**
     * Several outputs, each bound to an attn4j tensor; an output may be bound to an input's
     * memory (ONNX Runtime's shared buffers, e.g. a KV cache's past and present).
     */
    OrtRunner(byte[] model, int threads, Map<String, Tensor> inputTensors, Map<String, Tensor> outputTensors)
            throws OrtException {
        OrtEnvironment env = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, "attn4j-bench");
        options = new OrtSession.SessionOptions();
        options.setIntraOpNumThreads(threads);
        options.setInterOpNumThreads(1);
        options.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
        options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        session = env.createSession(model, options);
        for (Map.Entry<String, Tensor> e : inputTensors.entrySet()) {
            inputs.put(e.getKey(), OnnxTensor.createTensor(env, BenchData.floats(e.getValue()), e.getValue().shape()));
        }
        outputs = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : outputTensors.entrySet()) {
            outputs.put(e.getKey(), OnnxTensor.createTensor(env, BenchData.floats(e.getValue()), e.getValue().shape()));
        }
    }

    static String version() {
        return OrtEnvironment.getEnvironment().getVersion();
    }

    /** Runs the model; the output lands in the output tensor given at construction. */
    void run() throws OrtException {
        // The output is pinned (ours), so closing the result frees only ORT's bookkeeping.
        session.run(inputs, outputs).close();
    }

    /** {@link #run()} for callers that cannot throw checked exceptions. */
    void runUnchecked() {
        try {
            run();
        } catch (OrtException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void close() throws OrtException {
        for (OnnxTensor t : inputs.values()) {
            t.close();
        }
        for (OnnxTensor t : outputs.values()) {
            t.close();
        }
        session.close();
        options.close();
    }
}
