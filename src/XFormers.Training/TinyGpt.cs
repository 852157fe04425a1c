using System;
using System.Collections.Generic;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;
using XFormers.Kernels;
using Half = ILGPU.Half;

namespace XFormers.Training
{
    /// <summary>What the trainer needs from a model, whatever its compute type.</summary>
    public interface ITinyGpt : IDisposable
    {
        TinyGptConfig Config { get; }

        DeviceLauncher Launcher { get; }

        Gemm Gemm { get; }

        GradScaler Scaler { get; }

        /// <summary>The attention variant the blocks run.</summary>
        AttentionKernel Attention { get; }

        /// <summary>The data-parallel gradient buckets, or null without a communicator.</summary>
        GradientBuckets? Buckets { get; }

        IReadOnlyList<ParameterSlice> Parameters { get; }

        long ParameterCount { get; }

        /// <summary>Forward, backward and optimizer update for <paramref name="step"/>'s batch; queues work only.</summary>
        void TrainStep(int step, float learningRate);

        /// <summary>(mean loss, next-token accuracy) of the given steps, read from the device ring (at most <see cref="TinyGpt{T, TConvert}.MetricsRing"/> back).</summary>
        (float Loss, float Accuracy)[] ReadMetrics(int firstStep, int count);

        /// <summary>Logits (fp32) at position <paramref name="position"/> for one sequence of tokens.</summary>
        float[] NextTokenLogits(int[] tokens, int position);

        /// <summary>
        /// Inference with a KV cache: runs <paramref name="tokens"/> at positions [<paramref name="position"/>, position +
        /// tokens.Length) of one sequence, attending to the keys and values an earlier call cached at positions [0, position),
        /// caches theirs, and returns the logits (fp32) of the last one. Position 0 starts a new sequence (a prefill); a
        /// decoding step passes one token at the next position.
        /// </summary>
        float[] DecodeLogits(int[] tokens, int position);

        /// <summary>Host copies of master weights, moments and scaler state.</summary>
        TrainingState ReadState();

        void WriteState(TrainingState state);
    }

    /// <summary>Everything a checkpoint holds besides the configuration.</summary>
    public sealed record TrainingState(float[] Params, float[] M, float[] V, float[] Scaler, int Step);

    /// <summary>
    /// The seed's TinyGPT, llm.c style: token + position embeddings, N blocks of [LayerNorm → QKV → causal
    /// attention → projection → residual; LayerNorm → SwiGLU (w12, w3) → residual], final LayerNorm, linear
    /// head; softmax cross-entropy. Linear layers have no bias. Every activation lives in a buffer allocated
    /// once; each layer is a Forward/Backward pair of kernels and GEMMs, laid out below in the order they run.
    /// Mixed precision as PyTorch autocast: fp32 master weights and residual stream, LayerNorm and the loss in
    /// fp32, matrix products and attention in <typeparamref name="T"/>.
    /// </summary>
    public sealed partial class TinyGpt<T, TConvert> : ITinyGpt
        where T : unmanaged
        where TConvert : struct, IElementConvert<T>
    {
        /// <summary>Steps of metrics kept on the device before the host must read them.</summary>
        public const int MetricsRing = 64;

        private const int RowsPerMetricsChunk = 64;
        private readonly List<IDisposable> owned = new();
        private readonly AttentionKernel<T> attention;
        private readonly ParameterStore<T> store;
        private readonly TinyGptParameters<T> parameters;
        private readonly AdamW optimizer;
        private readonly TokenBatch data;
        private readonly ICommunicator? communicator;
        private readonly GradientBuckets? buckets;
        private readonly int firstSequence;
        private readonly int rows;
        private readonly int metricsChunks;
        private readonly Layer[] layers;

        // Activations, in forward order.
        private readonly ArrayView<int> tokens, targets;
        private readonly ArrayView<float>[] residual;
        private readonly ArrayView<T> qkv;
        private readonly ArrayView<T> lnfOut;
        private readonly ArrayView<float> lnfMean, lnfRstd;
        private readonly ArrayView<T> logits;
        private readonly ArrayView<float> rowLoss, rowCorrect, metrics;

        // Backward scratch, shared by the layers.
        private readonly ArrayView<float> dResidual, paramRows, ones;
        private readonly ArrayView<T> dResidualCompute, dLnOut, dHidden, dX12, dQkv;
        private readonly Tensor<T> dAttn, dq, dk, dv;
        private readonly ArrayView<int> order;

        /// <param name="communicator">
        /// Data parallelism: this model is rank <c>communicator.Rank</c> and <paramref name="config"/>'s batch is its share of the
        /// global batch (sequences [rank · batch, (rank + 1) · batch) of each step's); gradients and metrics are averaged over
        /// the ranks in buckets of <paramref name="bucketElements"/> during the backward (<see cref="GradientBuckets"/>).
        /// </param>
        public TinyGpt(
            XFormersContext context, TinyGptConfig config, TokenBatch data, AttentionKernel? attentionKernel = null, GemmBackend gemm = GemmBackend.Auto,
            bool ilgpuOnCpu = false, ICommunicator? communicator = null, long bucketElements = GradientBuckets.DefaultBucketElements)
        {
            ArgumentNullException.ThrowIfNull(context);
            ArgumentNullException.ThrowIfNull(config);
            config.Validate();
            if (ElementType.Of<T>() != config.DType)
                throw new ArgumentException($"config.DType is {config.DType} but the model computes in {typeof(T).Name}.", nameof(config));
            Config = config;
            this.data = data ?? throw new ArgumentNullException(nameof(data));
            attention = CausalSelfAttention.Resolve<T>(attentionKernel, config.HeadDim, config.Heads);
            Launcher = new DeviceLauncher(context) { UseIlgpuOnCpu = ilgpuOnCpu };
            Gemm = Training.Gemm.Create(Launcher, gemm);
            owned.Add(Gemm);
            store = new ParameterStore<T>(context, config.ParameterLayout());
            owned.Add(store);
            parameters = new TinyGptParameters<T>(store, config);
            Scaler = new GradScaler(context, dynamic: config.DType == DType.Float16);
            owned.Add(Scaler);
            optimizer = Own(new AdamW(config.LearningRate, weightDecay: config.WeightDecay));

            int b = config.Batch, t = config.Sequence, c = config.Dim, h = config.HiddenWidth, heads = config.Heads, k = config.HeadDim;
            rows = b * t;
            metricsChunks = (rows + RowsPerMetricsChunk - 1) / RowsPerMetricsChunk;
            tokens = Ints(rows);
            targets = Ints(rows);
            residual = Enumerable.Range(0, 2 * config.Layers + 1).Select(_ => Floats((long)rows * c)).ToArray();
            qkv = Compute((long)rows * 3 * c);
            layers = new Layer[config.Layers];
            for (int l = 0; l < config.Layers; l++)
            {
                layers[l] = new Layer
                {
                    Ln1Out = Compute((long)rows * c),
                    Ln1Mean = Floats(rows),
                    Ln1Rstd = Floats(rows),
                    Q = Own(Tensor<T>.Empty(context, b, t, heads, k)),
                    K = Own(Tensor<T>.Empty(context, b, t, heads, k)),
                    V = Own(Tensor<T>.Empty(context, b, t, heads, k)),
                    Attn = Own(Tensor<T>.Empty(context, b, t, heads, k)),
                    Lse = Own(Tensor<float>.Empty(context, b, heads, t)),
                    Ln2Out = Compute((long)rows * c),
                    Ln2Mean = Floats(rows),
                    Ln2Rstd = Floats(rows),
                    X12 = Compute((long)rows * 2 * h),
                    Hidden = Compute((long)rows * h),
                };
            }
            lnfOut = Compute((long)rows * c);
            lnfMean = Floats(rows);
            lnfRstd = Floats(rows);
            logits = Compute((long)rows * config.Vocab);
            rowLoss = Floats(rows);
            rowCorrect = Floats(rows);
            metrics = Floats((long)MetricsRing * metricsChunks * 2);

            dResidual = Floats((long)rows * c);
            dResidualCompute = Compute((long)rows * c);
            dLnOut = Compute((long)rows * c);
            dHidden = Compute((long)rows * h);
            dX12 = Compute((long)rows * 2 * h);
            dQkv = Compute((long)rows * 3 * c);
            dAttn = Own(Tensor<T>.Empty(context, b, t, heads, k));
            dq = Own(Tensor<T>.Empty(context, b, t, heads, k));
            dk = Own(Tensor<T>.Empty(context, b, t, heads, k));
            dv = Own(Tensor<T>.Empty(context, b, t, heads, k));
            paramRows = Floats((long)rows * 2 * c);
            ones = Floats(rows);
            ones.CopyFromCPU(Enumerable.Repeat(1f, rows).ToArray());
            order = Ints(Embedding.SortScratch(rows));
            store.Load<TConvert>(Launcher, InitialParameters(config, store));
            this.communicator = communicator;
            if (communicator is not null)
            {
                buckets = new GradientBuckets(communicator, store.Grads, store.Slices, bucketElements);
                firstSequence = communicator.Rank * config.Batch;
            }
        }

        public TinyGptConfig Config { get; }

        public DeviceLauncher Launcher { get; }

        public Gemm Gemm { get; }

        public GradScaler Scaler { get; }

        public AttentionKernel Attention => attention;

        public GradientBuckets? Buckets => buckets;

        public IReadOnlyList<ParameterSlice> Parameters => store.Slices;

        public long ParameterCount => store.Count;

        /// <summary>The parameter buffers (for tests).</summary>
        public ParameterStore<T> Store => store;

        /// <summary>Normal(0, 0.02) for embeddings and linear weights, ones and zeros for LayerNorm (GPT-2's scheme).</summary>
        public static float[] InitialParameters(TinyGptConfig config, ParameterStore<T> store)
        {
            var values = new float[store.Count];
            int index = 0;
            foreach (var slice in store.Slices)
            {
                float[] init = slice.Name.EndsWith(".bias", StringComparison.Ordinal) ? new float[slice.Length]
                    : slice.Name.Contains("ln", StringComparison.Ordinal) ? Enumerable.Repeat(1f, (int)slice.Length).ToArray()
                    : HostRandom.Normal(config.Seed + 7919 * index, (int)slice.Length, 0.02f);
                init.CopyTo(values, slice.Offset);
                index++;
            }
            return values;
        }

        public void TrainStep(int step, float learningRate)
        {
            // The step picks the batch and the metrics slot; a negative one would index before both.
            ArgumentOutOfRangeException.ThrowIfNegative(step);
            data.Make(Launcher, step, Config.Batch, Config.Sequence, tokens, targets, firstSequence);
            Forward(Config.Batch, training: true);
            Backward();
            Scaler.Check(Launcher, store.Grads);
            optimizer.LearningRate = learningRate;
            optimizer.Step<T, TConvert>(Launcher, store, Scaler);
            Scaler.Update(Launcher);
            var slot = metrics.SubView((long)(step % MetricsRing) * metricsChunks * 2, metricsChunks * 2);
            CrossEntropy.Metrics(Launcher, rows, RowsPerMetricsChunk, rowLoss, rowCorrect, slot);
            // The ranks' chunk sums averaged: divided by this rank's rows they are the global batch's means.
            if (communicator is not null)
            {
                communicator.StartAverage(Launcher, slot);
                communicator.WaitAll(Launcher);
            }
        }

        /// <summary>
        /// Forward and backward on <paramref name="step"/>'s batch without an optimizer step: returns the mean
        /// loss and leaves the (loss-scaled) gradients in <see cref="ParameterStore{T}.Grads"/>. For gradient checks.
        /// </summary>
        public double LossAndGradients(int step)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(step);
            data.Make(Launcher, step, Config.Batch, Config.Sequence, tokens, targets, firstSequence);
            Forward(Config.Batch, training: true);
            Backward();
            Launcher.Synchronize();
            var losses = new float[rows];
            rowLoss.SubView(0, rows).CopyToCPU(losses);
            return losses.Sum(x => (double)x) / rows;
        }

        /// <summary>
        /// The forward pass over the first <paramref name="batch"/> sequences of the token buffer, or, with
        /// <paramref name="decode"/>, over its tokens of one sequence against the KV cache.
        /// </summary>
        private void Forward(int batch, bool training, DecodeStep? decode = null)
        {
            var cfg = Config;
            int n = decode?.Count ?? batch * cfg.Sequence, c = cfg.Dim, h = cfg.HiddenWidth;
            var w = parameters;
            if (decode is null)
                Embedding.Forward(Launcher, batch, cfg.Sequence, c, tokens, w.TokenEmbedding.Value, w.PositionEmbedding.Value, residual[0]);
            else
                Embedding.Forward(Launcher, 1, n, c, tokens, w.TokenEmbedding.Value, w.PositionEmbedding.Value.SubView((long)decode.Start * c), residual[0]);
            for (int l = 0; l < cfg.Layers; l++)
            {
                var layer = layers[l];
                var p = w.Blocks[l];
                var input = residual[2 * l];
                var afterAttention = residual[2 * l + 1];
                var output = residual[2 * l + 2];
                LayerNorm.Forward<T, TConvert>(Launcher, n, c, input, p.Ln1.Values, layer.Ln1Out, layer.Ln1Mean, layer.Ln1Rstd, afterAttention);
                Linear(layer.Ln1Out, p.Qkv, qkv, n, 3 * c, c);
                Tensor<T> attn;
                if (decode is null)
                {
                    var (q, k, v, lse) = (Rows(layer.Q, batch), Rows(layer.K, batch), Rows(layer.V, batch), Rows(layer.Lse, batch));
                    attn = Rows(layer.Attn, batch);
                    CausalSelfAttention.Split(Launcher, n, c, qkv, q.View, k.View, v.View);
                    Launcher.Measure("attention forward", () => CausalSelfAttention.Forward(attention, q, k, v, attn, lse));
                }
                else
                {
                    attn = decode.Attend(l, qkv);
                }
                LinearAdd(attn.View, p.Proj, afterAttention, n, c, c);
                LayerNorm.Forward<T, TConvert>(Launcher, n, c, afterAttention, p.Ln2.Values, layer.Ln2Out, layer.Ln2Mean, layer.Ln2Rstd, output);
                Linear(layer.Ln2Out, p.W12, layer.X12, n, 2 * h, c);
                SwiGlu.Forward<T, TConvert>(Launcher, n, h, layer.X12, layer.Hidden);
                LinearAdd(layer.Hidden, p.W3, output, n, c, h);
            }
            LayerNorm.Forward<T, TConvert>(Launcher, n, c, residual[2 * cfg.Layers], w.FinalNorm.Values, lnfOut, lnfMean, lnfRstd, default);
            Linear(lnfOut, w.Head, logits, n, cfg.Vocab, c);
            if (training)
                CrossEntropy.ForwardBackward<T, TConvert>(Launcher, n, cfg.Vocab, logits, targets, rowLoss, rowCorrect, Scaler.State.SubView(GradScaler.Scale, 1), writeGradient: true);
        }

        /// <summary>
        /// The backward pass, the forward in reverse; every weight gradient is overwritten once. With a communicator, each
        /// finished layer hands its gradients' start to the buckets, which start averaging what is complete.
        /// </summary>
        private void Backward()
        {
            var cfg = Config;
            int n = rows, c = cfg.Dim, h = cfg.HiddenWidth, batch = cfg.Batch;
            var w = parameters;
            buckets?.Begin();
            // Head and final LayerNorm: dlogits sit in the logits buffer.
            LinearBackward(logits, w.Head, lnfOut, dLnOut, n, cfg.Vocab, c);
            LayerNorm.Backward<T, TConvert>(Launcher, Gemm, n, c, dLnOut, residual[2 * cfg.Layers], w.FinalNorm.Values, lnfMean, lnfRstd,
                dResidual, dResidualCompute, accumulate: false, w.FinalNorm.Grads, paramRows, ones);
            buckets?.Ready(Launcher, w.FinalNorm.Weight.Slice.Offset);
            for (int l = cfg.Layers - 1; l >= 0; l--)
            {
                var layer = layers[l];
                var p = w.Blocks[l];
                // MLP: dResidual holds d(output); the SwiGLU branch adds its input gradient through ln2.
                LinearBackward(dResidualCompute, p.W3, layer.Hidden, dHidden, n, c, h);
                SwiGlu.Backward<T, TConvert>(Launcher, n, h, layer.X12, dHidden, dX12);
                LinearBackward(dX12, p.W12, layer.Ln2Out, dLnOut, n, 2 * h, c);
                LayerNorm.Backward<T, TConvert>(Launcher, Gemm, n, c, dLnOut, residual[2 * l + 1], p.Ln2.Values, layer.Ln2Mean, layer.Ln2Rstd,
                    dResidual, dResidualCompute, accumulate: true, p.Ln2.Grads, paramRows, ones);
                // Attention branch.
                LinearBackward(dResidualCompute, p.Proj, layer.Attn.View, dAttn.View, n, c, c);
                Launcher.Measure("attention backward", () => CausalSelfAttention.Backward(attention, dAttn, layer.Attn, layer.Lse, layer.Q, layer.K, layer.V, dq, dk, dv));
                CausalSelfAttention.Merge(Launcher, n, c, dq.View, dk.View, dv.View, dQkv);
                LinearBackward(dQkv, p.Qkv, layer.Ln1Out, dLnOut, n, 3 * c, c);
                LayerNorm.Backward<T, TConvert>(Launcher, Gemm, n, c, dLnOut, residual[2 * l], p.Ln1.Values, layer.Ln1Mean, layer.Ln1Rstd,
                    dResidual, dResidualCompute, accumulate: true, p.Ln1.Grads, paramRows, ones);
                buckets?.Ready(Launcher, p.Ln1.Weight.Slice.Offset);
            }
            Embedding.Backward(Launcher, Gemm, batch, cfg.Sequence, c, tokens, dResidual,
                w.TokenEmbedding.Grad, w.PositionEmbedding.Grad, order, ones);
            buckets?.Finish(Launcher);
        }

        /// <summary>y[n, out] = x[n, in] · Wᵀ (W is [out, in], PyTorch's layout).</summary>
        private void Linear(ArrayView<T> x, Parameter<T> weight, ArrayView<T> y, int n, int outFeatures, int inFeatures) =>
            Gemm.Run<T, TConvert, T, TConvert>(false, true, n, outFeatures, inFeatures, 1f, x, inFeatures, weight.Weight, inFeatures, 0f, y, outFeatures);

        /// <summary>residual[n, out] += x · Wᵀ, accumulated in fp32.</summary>
        private void LinearAdd(ArrayView<T> x, Parameter<T> weight, ArrayView<float> residualOut, int n, int outFeatures, int inFeatures) =>
            Gemm.Run<T, TConvert, float, FloatConvert>(false, true, n, outFeatures, inFeatures, 1f, x, inFeatures, weight.Weight, inFeatures, 1f, residualOut, outFeatures);

        /// <summary>dx = dy · W and dW = dyᵀ · x (fp32, overwritten).</summary>
        private void LinearBackward(ArrayView<T> dy, Parameter<T> weight, ArrayView<T> x, ArrayView<T> dx, int n, int outFeatures, int inFeatures)
        {
            Gemm.Run<T, TConvert, T, TConvert>(false, false, n, inFeatures, outFeatures, 1f, dy, outFeatures, weight.Weight, inFeatures, 0f, dx, inFeatures);
            Gemm.Run<T, TConvert, float, FloatConvert>(true, false, outFeatures, inFeatures, n, 1f, dy, outFeatures, x, inFeatures, 0f, weight.Grad, inFeatures);
        }

        private static Tensor<TElement> Rows<TElement>(Tensor<TElement> tensor, int batch)
            where TElement : unmanaged => batch == tensor.Dim(0) ? tensor : tensor.Narrow(0, 0, batch);

        public (float Loss, float Accuracy)[] ReadMetrics(int firstStep, int count)
        {
            if (count > MetricsRing)
                throw new ArgumentOutOfRangeException(nameof(count), $"the device keeps the last {MetricsRing} steps.");
            Launcher.Synchronize();
            var host = new float[metrics.Length];
            metrics.CopyToCPU(host);
            var result = new (float, float)[count];
            for (int i = 0; i < count; i++)
            {
                int slot = (firstStep + i) % MetricsRing;
                double loss = 0, correct = 0;
                for (int chunk = 0; chunk < metricsChunks; chunk++)
                {
                    loss += host[(slot * metricsChunks + chunk) * 2];
                    correct += host[(slot * metricsChunks + chunk) * 2 + 1];
                }
                result[i] = ((float)(loss / rows), (float)(correct / rows));
            }
            return result;
        }

        public float[] NextTokenLogits(int[] sequence, int position)
        {
            ArgumentNullException.ThrowIfNull(sequence);
            if (sequence.Length != Config.Sequence || position < 0 || position >= Config.Sequence)
                throw new ArgumentException($"need {Config.Sequence} tokens and a position inside them.", nameof(sequence));
            tokens.SubView(0, Config.Sequence).CopyFromCPU(sequence);
            Forward(1, training: false);
            Launcher.Synchronize();
            var row = new T[Config.Vocab];
            logits.SubView((long)position * Config.Vocab, Config.Vocab).CopyToCPU(row);
            return row.Select(x => ElementType.ToFloat(x)).ToArray();
        }

        public TrainingState ReadState() =>
            new(store.Read(store.Params), store.Read(store.M), store.Read(store.V), Scaler.ReadState(), 0);

        public void WriteState(TrainingState state)
        {
            ArgumentNullException.ThrowIfNull(state);
            store.Load<TConvert>(Launcher, state.Params);
            store.Write(store.M, state.M);
            store.Write(store.V, state.V);
            Scaler.WriteState(state.Scaler);
        }

        private ArrayView<float> Floats(long count) => Own(Launcher.Accelerator.Allocate1D<float>(Math.Max(1, count))).View;

        private ArrayView<int> Ints(long count) => Own(Launcher.Accelerator.Allocate1D<int>(Math.Max(1, count))).View;

        private ArrayView<T> Compute(long count) => Own(Launcher.Accelerator.Allocate1D<T>(Math.Max(1, count))).View;

        private TOwned Own<TOwned>(TOwned resource)
            where TOwned : IDisposable
        {
            owned.Add(resource);
            return resource;
        }

        public void Dispose()
        {
            for (int i = owned.Count - 1; i >= 0; i--)
                owned[i].Dispose();
            owned.Clear();
        }

        private sealed class Layer
        {
            public ArrayView<T> Ln1Out;
            public ArrayView<float> Ln1Mean, Ln1Rstd;
            public Tensor<T> Q = null!, K = null!, V = null!, Attn = null!;
            public Tensor<float> Lse = null!;
            public ArrayView<T> Ln2Out;
            public ArrayView<float> Ln2Mean, Ln2Rstd;
            public ArrayView<T> X12, Hidden;
        }
    }

    /// <summary>Creates the model for a configuration's dtype.</summary>
    public static class TinyGpt
    {
        public static ITinyGpt Create(
            XFormersContext context, TinyGptConfig config, TokenBatch data, AttentionKernel? attention = null, GemmBackend gemm = GemmBackend.Auto,
            ICommunicator? communicator = null, long bucketElements = GradientBuckets.DefaultBucketElements) =>
            config.DType switch
            {
                DType.Float32 => new TinyGpt<float, FloatConvert>(context, config, data, attention, gemm, false, communicator, bucketElements),
                DType.Float16 => new TinyGpt<Half, HalfConvert>(context, config, data, attention, gemm, false, communicator, bucketElements),
                DType.BFloat16 => new TinyGpt<BFloat16, BFloat16Convert>(context, config, data, attention, gemm, false, communicator, bucketElements),
                _ => throw new ArgumentOutOfRangeException(nameof(config), config.DType, "unsupported dtype"),
            };
    }
}
