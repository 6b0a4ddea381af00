package dev.attn4j.layers;

import dev.attn4j.DType;
import dev.attn4j.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What every attention layer has, in Keras's shape and Java's manners.
 *
 * <p><b>Life cycle.</b> Construct with the layer's builder (Keras's constructor
 * arguments), then {@link #build} from input shapes, which creates the weights in
 * Keras's order with Keras's initial values; or let the first call build it, as Keras
 * does. {@link #setWeights} loads trained values. {@link #close()} frees the layer's
 * off-heap memory; later use is an {@link IllegalStateException}.
 *
 * <p><b>Threads.</b> After build (and {@code setWeights}, which belongs to setting up),
 * a layer is immutable and every {@code call} may run from many threads at once: calls
 * read the weights, write only the tensors the caller gives or gets, and take their
 * scratch memory per thread. Do not call {@code setWeights} or {@code close} while calls
 * are running: the values a running call sees are then unspecified (never a crash).
 *
 * <p><b>Memory.</b> Outputs go to the {@link Arena} passed to {@link #call(Arena, CallArgs)},
 * or into tensors the caller provides ({@link #callInto}); the layer's own arena holds
 * only its weights.
 */
public abstract class AttentionLayer implements AutoCloseable {

    /**
     * A weight to create at build: Keras variable name ("kernel"), path below the layer
     * name ("query/kernel"), shape and initial values.
     */
    record WeightSpec(String name, String path, long[] shape, float[] initial) {
        WeightSpec(String name, long[] shape, float[] initial) {
            this(name, name, shape, initial);
        }
    }

    private final String name;
    private final boolean trainable;
    private final Long seed;
    private final long effectiveSeed;
    private final Arena arena = Arena.ofShared();
    private final AtomicLong dropoutStreams = new AtomicLong();
    private final Object lock = new Object();
    private volatile List<Weight> weights;
    private volatile long[][] builtShapes;
    private volatile boolean closed;
    /** Counts weight changes, so a backward pass can tell that its forward pass saw other weights. */
    private volatile long weightsVersion;
    /** "MultiHeadAttention.call" and so on, made once: a call builds no strings. */
    private final String callAction;
    private final String callIntoAction;

    AttentionLayer(String name, boolean trainable, Long seed) {
        this.callAction = getClass().getSimpleName() + ".call";
        this.callIntoAction = getClass().getSimpleName() + ".callInto";
        this.name = name;
        this.trainable = trainable;
        this.seed = seed;
        // Keras draws a random seed when none is given; so do we (dropout, initializers).
        this.effectiveSeed = seed != null ? seed : new SplittableRandom().nextLong();
    }

    /** The layer's name (Keras's default: the snake_case class name, then _1, _2, ...). */
    public final String name() {
        return name;
    }

    /** Keras's {@code trainable} flag, kept for the config (attn4j does not train). */
    public final boolean trainable() {
        return trainable;
    }

    /** The seed given at construction, or null (then a random one is drawn). */
    public final Long seed() {
        return seed;
    }

    final long effectiveSeed() {
        return effectiveSeed;
    }

    /** The next dropout stream: each training call draws a fresh, reproducible mask. */
    final long nextDropoutStream() {
        return dropoutStreams.getAndIncrement();
    }

    public final boolean isBuilt() {
        return weights != null;
    }

    /** Keras {@code get_config()}: the constructor arguments as Keras writes them. */
    public abstract Map<String, Object> getConfig();

    /**
     * The output shape for inputs of these shapes (key may be null: then the value's).
     *
     * @throws IllegalArgumentException if the shapes do not fit together
     */
    public abstract long[] computeOutputShape(long[] queryShape, long[] valueShape, long[] keyShape);

    /** The shape of the attention scores returned for inputs of these shapes. */
    public abstract long[] computeAttentionScoresShape(long[] queryShape, long[] valueShape, long[] keyShape);

    /** The weights to create for these (validated) input shapes, in Keras order. */
    abstract List<WeightSpec> weightSpecs(long[] queryShape, long[] valueShape, long[] keyShape);

    /** Shape checks the weights impose on later calls (e.g. the feature size). */
    abstract void checkBuiltShapes(String action, long[][] built, long[] queryShape, long[] valueShape,
                                   long[] keyShape);

    /**
     * Creates the weights for inputs of these shapes (key may be null). Building again
     * with compatible shapes does nothing; incompatible shapes are an error.
     */
    public final void build(long[] queryShape, long[] valueShape, long[] keyShape) {
        String action = getClass().getSimpleName() + ".build";
        Objects.requireNonNull(queryShape, () -> action + ": queryShape must not be null");
        Objects.requireNonNull(valueShape, () -> action + ": valueShape must not be null");
        computeOutputShape(queryShape, valueShape, keyShape); // validates
        synchronized (lock) {
            checkOpen(action);
            if (weights != null) {
                checkBuiltShapes(action, builtShapes, queryShape, valueShape, keyShape);
                return;
            }
            List<Weight> created = new ArrayList<>();
            for (WeightSpec spec : weightSpecs(queryShape, valueShape, keyShape)) {
                long size = 1;
                for (long d : spec.shape()) {
                    size *= d;
                }
                MemorySegment storage = arena.allocate(Math.max(1, size) * Float.BYTES, 64);
                MemorySegment.copy(spec.initial(), 0, storage, ValueLayout.JAVA_FLOAT, 0, spec.initial().length);
                created.add(new Weight(spec.name(), name + "/" + spec.path(), spec.shape(), storage));
            }
            builtShapes = new long[][] {queryShape.clone(), valueShape.clone(),
                    keyShape == null ? null : keyShape.clone()};
            weights = List.copyOf(created);
            weightsUpdated();
        }
    }

    /**
     * Called after the weights were created or changed (build, setWeights, constraints),
     * before any call sees them: layers that keep values derived from the weights (e.g. a
     * packed projection kernel) refresh them here. Runs under the layer's lock.
     */
    void weightsChanged() {}

    /** After any change of the weights, under the layer's lock: a new version, then {@link #weightsChanged}. */
    final void weightsUpdated() {
        weightsVersion++;
        weightsChanged();
    }

    /** Off-heap memory in the layer's arena (freed by close), 64-byte aligned, zeroed. */
    final MemorySegment allocateDerived(long bytes) {
        return arena.allocate(Math.max(1, bytes), 64);
    }

    /** The layer's lock, held while weights change. */
    final Object weightsLock() {
        return lock;
    }

    /** Builds from the call's inputs unless built, then checks them against the build. */
    final void ensureBuilt(String action, long[] q, long[] v, long[] k) {
        if (weights == null) {
            build(q, v, k);
        } else {
            checkBuiltShapes(action, builtShapes, q, v, k);
        }
    }

    /** The weights in Keras order (empty before build), e.g. {@code [scale, concat_score_weight]}. */
    public final List<Weight> weights() {
        checkOpen("weights");
        List<Weight> w = weights;
        return w == null ? List.of() : w;
    }

    /**
     * Sets all weights, in the order of {@link #weights()}, from row-major arrays (Keras
     * {@code set_weights}). Checks the count and each element count first; nothing is
     * changed when a check fails.
     */
    public final void setWeights(float[]... values) {
        String action = getClass().getSimpleName() + ".setWeights";
        Objects.requireNonNull(values, () -> action + ": values must not be null");
        List<Weight> w = requireBuilt(action);
        requireCount(action, w, values.length);
        for (int i = 0; i < values.length; i++) {
            Objects.requireNonNull(values[i], action + ": value " + i + " (" + w.get(i).path() + ") is null");
            if (values[i].length != w.get(i).size()) {
                throw new IllegalArgumentException(action + ": weight " + i + " (" + w.get(i).path() + ") has shape "
                        + Arrays.toString(w.get(i).shape()) + " = " + w.get(i).size() + " values, but "
                        + values[i].length + " were given");
            }
        }
        synchronized (lock) {
            for (int i = 0; i < values.length; i++) {
                w.get(i).storage().copyFrom(values[i]);
            }
            weightsUpdated();
        }
    }

    /** Sets all weights from tensors whose shapes must equal the weights' shapes exactly. */
    public final void setWeights(List<Tensor> values) {
        String action = getClass().getSimpleName() + ".setWeights";
        Objects.requireNonNull(values, () -> action + ": values must not be null");
        List<Weight> w = requireBuilt(action);
        requireCount(action, w, values.size());
        float[][] arrays = new float[values.size()][];
        for (int i = 0; i < arrays.length; i++) {
            Tensor t = values.get(i);
            Objects.requireNonNull(t, action + ": value " + i + " (" + w.get(i).path() + ") is null");
            if (t.dtype() != DType.FLOAT32 || !Arrays.equals(t.shape(), w.get(i).shape())) {
                throw new IllegalArgumentException(action + ": weight " + i + " (" + w.get(i).path()
                        + ") must be float32 of shape " + Arrays.toString(w.get(i).shape()) + ", but is " + t);
            }
            if (!t.isAlive()) {
                throw new IllegalStateException(action + ": weight " + i + " (" + w.get(i).path() + "): the arena of "
                        + t + " is closed");
            }
            arrays[i] = t.toFloatArray();
        }
        setWeights(arrays);
    }

    private List<Weight> requireBuilt(String action) {
        checkOpen(action);
        List<Weight> w = weights;
        if (w == null) {
            throw new IllegalStateException(action + ": layer '" + name + "' is not built yet; call build(...) "
                    + "with the input shapes first (its weights depend on them)");
        }
        return w;
    }

    private static void requireCount(String action, List<Weight> w, int given) {
        if (given != w.size()) {
            throw new IllegalArgumentException(action + ": expected " + w.size() + " weights " + w + ", but "
                    + given + " were given");
        }
    }

    /** The value of a scalar weight, read at call time. */
    static float scalar(Weight w) {
        return w.storage().segment().get(ValueLayout.JAVA_FLOAT, 0);
    }

    final Weight weight(int index) {
        return weights.get(index);
    }

    final void checkOpen(String action) {
        if (closed) {
            throw new IllegalStateException(action + ": layer '" + name + "' is closed");
        }
    }

    /** Releases the weights' off-heap memory. Idempotent. */
    @Override
    public void close() {
        synchronized (lock) {
            if (!closed) {
                closed = true;
                arena.close();
            }
        }
    }

    // ---- calls ----------------------------------------------------------------------

    /**
     * Computes the layer; the output (and the scores, if asked for) are allocated in
     * {@code arena}, which the caller owns.
     */
    public final AttentionResult call(Arena arena, CallArgs args) {
        String action = callAction;
        Objects.requireNonNull(arena, () -> action + ": arena must not be null");
        Objects.requireNonNull(args, () -> action + ": args must not be null");
        Plan plan = plan(action, args);
        Tensor output = Tensor.allocate(arena, plan.outputShape());
        Tensor scores = args.returnAttentionScores() ? Tensor.allocate(arena, plan.scoresShape()) : null;
        double activityLoss = run(plan, args, output, scores, null);
        return new AttentionResult(output, scores, activityLoss);
    }

    // ---- gradients ----------------------------------------------------------------------

    /**
     * {@link #call(Arena, CallArgs)} that also keeps, in {@code arena}, what
     * {@link #backward} needs (see {@link ForwardPass}). The output is Keras's, as from
     * {@code call} (within float rounding: this call skips the inference-only shortcuts
     * that fold biases). A training call with dropout records its dropout stream, so the
     * backward pass applies the same mask.
     */
    public final ForwardPass forward(Arena arena, CallArgs args) {
        String action = getClass().getSimpleName() + ".forward";
        Objects.requireNonNull(arena, () -> action + ": arena must not be null");
        Objects.requireNonNull(args, () -> action + ": args must not be null");
        Plan plan = plan(action, args);
        Tensor output = Tensor.allocate(arena, plan.outputShape());
        Tensor scores = args.returnAttentionScores() ? Tensor.allocate(arena, plan.scoresShape()) : null;
        long version = weightsVersion;
        Object saved = saveFor(arena, plan, args);
        double activityLoss = run(plan, args, output, scores, saved);
        return new ForwardPass(this, args, new AttentionResult(output, scores, activityLoss), plan, saved, version);
    }

    /**
     * The backward pass: the gradients of a loss L with respect to the inputs of
     * {@code forward}'s call and to every weight, given {@code outputGradient} = dL/d(output)
     * (the output's shape), allocated in {@code arena}. Masked positions (padding, causal,
     * sliding window, attention masks) get the gradient Keras's autodiff gives them: none
     * through a masked logit of the multi-head layers (Keras replaces it by a constant),
     * the unmasked formula through Attention's and AdditiveAttention's {@code s - 1e9}.
     * A training call's dropout mask is the forward's.
     *
     * @throws IllegalArgumentException when {@code forward} is another layer's or the
     *         gradient's shape or dtype differs from the output's
     * @throws IllegalStateException when the layer's weights changed since the forward pass,
     *         or an arena (the forward's, an input's, the gradient's) is closed
     */
    public final Gradients backward(Arena arena, ForwardPass forward, Tensor outputGradient) {
        String action = getClass().getSimpleName() + ".backward";
        Objects.requireNonNull(arena, () -> action + ": arena must not be null");
        Objects.requireNonNull(forward, () -> action + ": forward must not be null");
        Objects.requireNonNull(outputGradient, () -> action + ": outputGradient must not be null");
        checkOpen(action);
        if (forward.layer() != this) {
            throw new IllegalArgumentException(action + ": forward was made by layer '" + forward.layer().name()
                    + "', not by this layer '" + name + "'");
        }
        if (forward.weightsVersion() != weightsVersion) {
            throw new IllegalStateException(action + ": the weights of layer '" + name + "' changed after the forward "
                    + "pass (setWeights or applyConstraints); run forward again");
        }
        if (!forward.output().isAlive()) {
            throw new IllegalStateException(action + ": the arena of the forward pass is closed (it holds the saved "
                    + "activations): keep it open until the backward pass");
        }
        CallArgs args = forward.args();
        requireFloat(action, "query", args.query());
        requireFloat(action, "value", args.value());
        if (args.key() != null) {
            requireFloat(action, "key", args.key());
        }
        Tensor[] masks = {args.queryMask(), args.valueMask(), args.keyMask(), args.attentionMask()};
        String[] maskNames = {"queryMask", "valueMask", "keyMask", "attentionMask"};
        for (int i = 0; i < masks.length; i++) {
            if (masks[i] != null && !masks[i].isAlive()) {
                throw new IllegalStateException(action + ": the arena of " + maskNames[i] + " " + masks[i]
                        + " is closed");
            }
        }
        Tensor out = forward.output();
        if (outputGradient.dtype() != DType.FLOAT32 || !hasShape(outputGradient, out.shape())) {
            throw new IllegalArgumentException(action + ": outputGradient must be float32 of the output's shape "
                    + Arrays.toString(out.shape()) + ", but is " + outputGradient);
        }
        if (!outputGradient.isAlive()) {
            throw new IllegalStateException(action + ": the arena of outputGradient " + outputGradient + " is closed");
        }
        Tensor dQuery = Tensor.allocate(arena, args.query().shape());
        Tensor dValue = Tensor.allocate(arena, args.value().shape());
        Tensor dKey = args.key() == null ? null : Tensor.allocate(arena, args.key().shape());
        List<Weight> w = weights();
        List<Weight> dWeights = new ArrayList<>(w.size());
        for (Weight weight : w) {
            dWeights.add(new Weight(weight.name(), weight.path(), weight.shape(),
                    arena.allocate(Math.max(1, weight.size()) * Float.BYTES, 64)));
        }
        backward((Plan) forward.plan(), args, forward, outputGradient, dQuery, dValue, dKey,
                dWeights.stream().map(Weight::storage).toList());
        return new Gradients(dQuery, dValue, dKey, dWeights);
    }

    /** The layer's saved-activation holder for a forward pass of this plan (in {@code arena}). */
    abstract Object saveFor(Arena arena, Plan plan, CallArgs args);

    /**
     * Computes the gradients of a validated backward pass into the given tensors (zeroed
     * or not: implementations write every element); {@code dKey} is null without a key.
     */
    abstract void backward(Plan plan, CallArgs args, ForwardPass forward, Tensor outputGradient, Tensor dQuery,
                           Tensor dValue, Tensor dKey, List<Tensor> dWeights);

    /** {@code call(arena, CallArgs.of(query, value)).output()}. */
    public final Tensor call(Arena arena, Tensor query, Tensor value) {
        return call(arena, CallArgs.of(query, value)).output();
    }

    /**
     * Computes into tensors the caller provides: {@code output} of
     * {@link #computeOutputShape} and, exactly when {@code args} asks for scores,
     * {@code attentionScores} of {@link #computeAttentionScoresShape} (else null).
     * Nothing is allocated on the Java heap or off-heap beyond per-thread scratch.
     */
    public final void callInto(CallArgs args, Tensor output, Tensor attentionScores) {
        String action = callIntoAction;
        if (args == null) { // not requireNonNull with a capturing lambda: that allocates on every call
            throw new NullPointerException(action + ": args must not be null");
        }
        Plan plan = plan(action, args);
        requireOut(action, "output", output, plan.outputShape());
        if (args.returnAttentionScores()) {
            requireOut(action, "attentionScores", attentionScores, plan.scoresShape());
        } else if (attentionScores != null) {
            throw new IllegalArgumentException(action + ": attentionScores must be null when the call does not "
                    + "return attention scores");
        }
        run(plan, args, output, attentionScores, null);
    }

    /** A call input must be a live float32 tensor. */
    static void requireFloat(String action, String what, Tensor t) {
        if (t.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(action + ": " + what + " must be float32, but is " + t);
        }
        if (!t.isAlive()) {
            throw new IllegalStateException(action + ": the arena of " + what + " " + t + " is closed");
        }
    }

    private static void requireOut(String action, String what, Tensor t, long[] shape) {
        if (t == null) {
            throw new NullPointerException(action + ": " + what + " must not be null");
        }
        if (t.dtype() != DType.FLOAT32 || !hasShape(t, shape)) {
            throw new IllegalArgumentException(action + ": " + what + " must be float32 of shape "
                    + Arrays.toString(shape) + ", but is " + t);
        }
        if (t.segment().isReadOnly()) {
            throw new IllegalArgumentException(action + ": " + what + " must be writable");
        }
        if (!t.isAlive()) {
            throw new IllegalStateException(action + ": the arena of " + what + " " + t + " is closed");
        }
    }

    /** Whether {@code t} has this shape; compares dimension by dimension, without copying t's shape. */
    static boolean hasShape(Tensor t, long[] shape) {
        if (t.rank() != shape.length) {
            return false;
        }
        for (int i = 0; i < shape.length; i++) {
            if (t.dim(i) != shape[i]) {
                return false;
            }
        }
        return true;
    }

    /** Validated call: shapes of the result, and layer-specific geometry for {@link #run}. */
    record Plan(long[] outputShape, long[] scoresShape, Object detail) {}

    /** Validates the call (all of it, before any native call) and builds if needed. */
    abstract Plan plan(String action, CallArgs args);

    /**
     * Runs a validated call; returns the activity regularization loss (0 without one).
     * {@code saved} is null for a plain call, or {@link #saveFor}'s holder of a forward
     * pass, which the run fills.
     */
    abstract double run(Plan plan, CallArgs args, Tensor output, Tensor scores, Object saved);
}
