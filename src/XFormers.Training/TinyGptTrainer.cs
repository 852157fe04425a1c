using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>One training step's numbers: mean loss, next-token accuracy, seconds since training started.</summary>
    public readonly record struct StepMetrics(int Step, float Loss, float Accuracy, double Seconds);

    /// <summary>
    /// The training loop around a <see cref="ITinyGpt"/>: steps are queued without waiting for the device; every
    /// <see cref="MetricsInterval"/> steps (and at the end) the loop reads the metrics the device kept and reports
    /// each step to the callback. Checkpoints are single safetensors files: the weights under PyTorch names,
    /// AdamW's moments under <c>optimizer.exp_avg.*</c> / <c>optimizer.exp_avg_sq.*</c>, and the configuration,
    /// step and GradScaler state as metadata; resuming from one continues bit-identically on the same device
    /// (batches are a function of the step number).
    /// </summary>
    public sealed class TinyGptTrainer : IDisposable
    {
        public const string ExpAvgPrefix = "optimizer.exp_avg.";
        public const string ExpAvgSqPrefix = "optimizer.exp_avg_sq.";
        private readonly List<StepMetrics> history = new();
        private readonly TokenBatch data;
        private double elapsedBefore;

        /// <param name="communicator">
        /// Data parallelism: this trainer is one rank; <paramref name="config"/> holds the global batch, which the ranks
        /// split evenly in rank order, so every rank count sees the batches and the loss one process would (up to the
        /// order of fp32 sums) and checkpoints resume across rank counts.
        /// </param>
        public TinyGptTrainer(
            XFormersContext context, TinyGptConfig config, TokenBatch? data = null, AttentionKernel? attention = null, GemmBackend gemm = GemmBackend.Auto,
            ICommunicator? communicator = null, long bucketElements = GradientBuckets.DefaultBucketElements)
        {
            ArgumentNullException.ThrowIfNull(context);
            ArgumentNullException.ThrowIfNull(config);
            int world = communicator?.WorldSize ?? 1;
            if (config.Batch % world != 0)
                throw new ArgumentException($"the global batch {config.Batch} does not split evenly over {world} ranks.", nameof(config));
            Context = context;
            Config = config;
            Communicator = communicator;
            this.data = data ?? TokenBatch.Counting(context, config.Vocab, config.Seed);
            Model = TinyGpt.Create(context, config with { Batch = config.Batch / world }, this.data, attention, gemm, communicator, bucketElements);
        }

        /// <summary>The data-parallel communicator, or null for one process.</summary>
        public ICommunicator? Communicator { get; }

        public XFormersContext Context { get; }

        public TinyGptConfig Config { get; }

        public ITinyGpt Model { get; }

        /// <summary>The next step to run (the number of steps done).</summary>
        public int Step { get; private set; }

        /// <summary>How many steps run between two reads of the metrics (each read waits for the device); at most 64.</summary>
        public int MetricsInterval { get; set; } = 16;

        /// <summary>Every step's metrics so far (since the start, or since the resumed step).</summary>
        public IReadOnlyList<StepMetrics> History => history;

        /// <summary>
        /// Where the run's checkpoint will be saved, if anywhere: <see cref="Train"/> checks at its start that the file can be
        /// written there (<see cref="SafeTensors.PrepareTarget"/>), so an unwritable path fails before the training, not after.
        /// </summary>
        public string? CheckpointPath { get; set; }

        /// <summary>
        /// Runs steps until <paramref name="untilStep"/> (default: the configured number), reporting each one. When
        /// <paramref name="cancellationToken"/> is cancelled, the step in progress finishes, its metrics are reported,
        /// and Train returns with <see cref="Step"/> counting the steps done (no exception): the state is whole, so a
        /// checkpoint written then resumes exactly.
        /// </summary>
        public IReadOnlyList<StepMetrics> Train(int? untilStep = null, Action<StepMetrics>? onStep = null, CancellationToken cancellationToken = default)
        {
            if (CheckpointPath is not null)
                SafeTensors.PrepareTarget(CheckpointPath);
            int end = untilStep ?? Config.Steps;
            int interval = Math.Clamp(MetricsInterval, 1, TinyGpt<float, FloatConvert>.MetricsRing);
            var clock = Stopwatch.StartNew();
            while (Step < end && !cancellationToken.IsCancellationRequested)
            {
                int first = Step;
                int count = Math.Min(interval, end - first);
                for (int i = 0; i < count; i++)
                {
                    if (i > 0 && cancellationToken.IsCancellationRequested)
                    {
                        count = i;
                        break;
                    }
                    Model.TrainStep(first + i, Config.LearningRate);
                }
                Step += count;
                var metrics = Model.ReadMetrics(first, count);
                double now = elapsedBefore + clock.Elapsed.TotalSeconds;
                for (int i = 0; i < count; i++)
                {
                    var m = new StepMetrics(first + i, metrics[i].Loss, metrics[i].Accuracy, now);
                    history.Add(m);
                    onStep?.Invoke(m);
                }
            }
            elapsedBefore += clock.Elapsed.TotalSeconds;
            return history;
        }

        /// <summary>Queues <paramref name="steps"/> steps and waits once at the end: seconds per step, for benchmarks.</summary>
        public double TimeSteps(int steps)
        {
            Context.Synchronize();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++)
                Model.TrainStep(Step + i, Config.LearningRate);
            Context.Synchronize();
            Step += steps;
            return clock.Elapsed.TotalSeconds / Math.Max(1, steps);
        }

        /// <summary>
        /// Writes a checkpoint atomically; <paramref name="extraMetadata"/> is stored beside the configuration. A model with a
        /// NaN or infinite weight or moment is refused (<see cref="CheckpointException"/>) and the file is left as it was.
        /// </summary>
        public void SaveCheckpoint(string path, IReadOnlyDictionary<string, string>? extraMetadata = null)
        {
            ArgumentException.ThrowIfNullOrEmpty(path);
            var state = Model.ReadState();
            var tensors = new List<SafeTensor>();
            foreach (var (prefix, values) in new[] { ("", state.Params), (ExpAvgPrefix, state.M), (ExpAvgSqPrefix, state.V) })
            {
                foreach (var slice in Model.Parameters)
                {
                    var part = new float[slice.Length];
                    Array.Copy(values, slice.Offset, part, 0, slice.Length);
                    int bad = Array.FindIndex(part, x => !float.IsFinite(x));
                    if (bad >= 0)
                        throw new CheckpointException(path, $"tensor {prefix + slice.Name}", $"element {bad} is {part[bad].ToString(CultureInfo.InvariantCulture)}; a non-finite model is not saved, and the file was left as it was.");
                    tensors.Add(SafeTensor.FromFloats(prefix + slice.Name, part, slice.Shape.Select(d => (long)d).ToArray()));
                }
            }
            var metadata = Config.ToMetadata();
            metadata["format"] = FormatTag;
            metadata["step"] = Step.ToString(CultureInfo.InvariantCulture);
            metadata["scaler"] = string.Join(",", state.Scaler.Select(x => x.ToString("R", CultureInfo.InvariantCulture)));
            if (extraMetadata is not null)
            {
                foreach (var (key, value) in extraMetadata)
                    metadata[key] = value;
            }
            SafeTensors.Save(path, tensors, metadata);
        }

        /// <summary>The metadata value <c>format</c> of this trainer's checkpoints.</summary>
        public const string FormatTag = "xformers-dotnet-tinygpt";

        /// <summary>The configuration and metadata stored in a checkpoint, checked (<see cref="CheckpointException"/> names the key).</summary>
        public static (TinyGptConfig Config, IReadOnlyDictionary<string, string> Metadata) ReadCheckpointConfig(string path)
        {
            var (_, metadata) = SafeTensors.Load(path);
            return (ConfigOf(path, metadata), metadata);
        }

        /// <summary>
        /// Restores weights, moments, scaler state and the step from a checkpoint of the same model. The header is checked
        /// against the model tensor by tensor (name, dtype F32, full shape, no tensor the model lacks) and the metadata key by
        /// key (format tag, configuration, step ≥ 0, scaler state); weights and moments must be finite unless
        /// <paramref name="allowNonFinite"/>, and second moments non-negative. Any problem is a <see cref="CheckpointException"/>
        /// naming the file and the tensor or key, raised before the model changes.
        /// </summary>
        public void LoadCheckpoint(string path, bool allowNonFinite = false)
        {
            var (tensors, metadata) = SafeTensors.Load(path);
            var stored = ConfigOf(path, metadata);
            if (stored with { Steps = Config.Steps } != Config)
                throw new CheckpointException(path, "metadata", $"holds a model of {stored}; this trainer is {Config}.");
            int step = MetadataInt(path, metadata, "step", 0, int.MaxValue);
            var scaler = MetadataFloats(path, metadata, "scaler", 4);
            if (scaler[0] <= 0f || scaler.Skip(1).Any(x => x < 0f))
                throw new CheckpointException(path, "metadata scaler", $"'{metadata["scaler"]}' is not a GradScaler state: a positive scale, then three counts ≥ 0.");

            var expected = new HashSet<string>(StringComparer.Ordinal);
            var count = Model.ParameterCount;
            float[] Gather(string prefix, bool nonNegative)
            {
                var flat = new float[count];
                foreach (var slice in Model.Parameters)
                {
                    string name = prefix + slice.Name;
                    expected.Add(name);
                    if (!tensors.TryGetValue(name, out var tensor))
                        throw new CheckpointException(path, $"tensor {name}", "is missing.");
                    if (tensor.DType != "F32")
                        throw new CheckpointException(path, $"tensor {name}", $"is {tensor.DType}; this trainer stores F32.");
                    if (!tensor.Shape.SequenceEqual(slice.Shape.Select(d => (long)d)))
                        throw new CheckpointException(path, $"tensor {name}", $"has shape [{string.Join(", ", tensor.Shape)}]; this model needs [{string.Join(", ", slice.Shape)}].");
                    var values = tensor.ToFloats();
                    int bad = allowNonFinite ? -1 : Array.FindIndex(values, x => !float.IsFinite(x));
                    if (bad >= 0)
                        throw new CheckpointException(path, $"tensor {name}", $"element {bad} is {values[bad].ToString(CultureInfo.InvariantCulture)}; load with allowNonFinite to accept non-finite values.");
                    int negative = nonNegative ? Array.FindIndex(values, x => x < 0f) : -1;
                    if (negative >= 0)
                        throw new CheckpointException(path, $"tensor {name}", $"element {negative} is {values[negative].ToString(CultureInfo.InvariantCulture)}; a second moment is never negative.");
                    values.CopyTo(flat, slice.Offset);
                }
                return flat;
            }
            var state = new TrainingState(Gather("", false), Gather(ExpAvgPrefix, false), Gather(ExpAvgSqPrefix, true), scaler, 0);
            var unknown = tensors.Keys.Where(name => !expected.Contains(name)).OrderBy(name => name, StringComparer.Ordinal).FirstOrDefault();
            if (unknown is not null)
                throw new CheckpointException(path, $"tensor {unknown}", "is not a tensor of this model.");
            Model.WriteState(state);
            Step = step;
        }

        /// <summary>The configuration a checkpoint's metadata describes, every key present, parsed and in range.</summary>
        private static TinyGptConfig ConfigOf(string path, IReadOnlyDictionary<string, string> m)
        {
            if (!m.TryGetValue("format", out var format) || format != FormatTag)
                throw new CheckpointException(path, "metadata format", format is null ? $"is missing; this is not a {FormatTag} checkpoint." : $"is '{format}', not '{FormatTag}'.");
            int d = MetadataInt(path, m, "d", 8, 1 << 16);
            int heads = MetadataInt(path, m, "heads", 1, d);
            if (d % heads != 0)
                throw new CheckpointException(path, "metadata heads", $"{heads} does not divide d = {d}.");
            int hidden = MetadataInt(path, m, "hidden", 1, 1 << 20);
            if (!Enum.TryParse<Dsl.DType>(m.TryGetValue("dtype", out var dtype) ? dtype : "", out var parsed) || !Enum.IsDefined(parsed) || int.TryParse(dtype, out _))
                throw new CheckpointException(path, "metadata dtype", dtype is null ? "is missing." : $"'{dtype}' is not one of Float32, Float16, BFloat16.");
            return new TinyGptConfig
            {
                Vocab = MetadataInt(path, m, "vocab", 2, 1 << 24),
                Dim = d,
                Layers = MetadataInt(path, m, "layers", 1, 1024),
                Heads = heads,
                Sequence = MetadataInt(path, m, "seq", 1, 1 << 20),
                Batch = MetadataInt(path, m, "batch", 1, 1 << 20),
                Hidden = hidden == 4 * d ? 0 : hidden,
                DType = parsed,
                LearningRate = MetadataFloats(path, m, "lr", 1)[0],
                WeightDecay = MetadataFloats(path, m, "weight_decay", 1)[0],
                Steps = MetadataInt(path, m, "steps", 0, int.MaxValue),
                Seed = MetadataInt(path, m, "seed", int.MinValue, int.MaxValue),
            };
        }

        private static int MetadataInt(string path, IReadOnlyDictionary<string, string> m, string key, int min, int max)
        {
            if (!m.TryGetValue(key, out var text))
                throw new CheckpointException(path, $"metadata {key}", "is missing.");
            if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
                throw new CheckpointException(path, $"metadata {key}", $"'{text}' is not an integer from {min} to {max}.");
            return value;
        }

        private static float[] MetadataFloats(string path, IReadOnlyDictionary<string, string> m, string key, int count)
        {
            if (!m.TryGetValue(key, out var text))
                throw new CheckpointException(path, $"metadata {key}", "is missing.");
            var parts = text.Split(',');
            var values = new float[parts.Length];
            for (int i = 0; i < parts.Length; i++)
            {
                if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !float.IsFinite(values[i]))
                    parts = Array.Empty<string>();
            }
            if (parts.Length != count)
                throw new CheckpointException(path, $"metadata {key}", $"'{text}' is not {(count == 1 ? "a finite number" : $"{count} finite numbers separated by commas")}.");
            return values;
        }

        /// <summary>
        /// Continues <paramref name="prompt"/> by <paramref name="count"/> tokens, sampling from softmax(logits /
        /// temperature) with a seeded generator (temperature 0: argmax), over the first <paramref name="vocabulary"/> ids
        /// (default: all; a tokenizer's size leaves out the padding of a vocabulary rounded up for speed).
        /// </summary>
        public int[] Generate(int[] prompt, int count, float temperature = 0.8f, int seed = 0, int? vocabulary = null)
        {
            ArgumentNullException.ThrowIfNull(prompt);
            var tokens = prompt.Length > 0 ? prompt.ToList() : new List<int> { 0 };
            var random = new Random(seed);
            int t = Config.Sequence;
            for (int i = 0; i < count; i++)
            {
                var window = tokens.Skip(Math.Max(0, tokens.Count - t)).ToArray();
                var padded = new int[t];
                window.CopyTo(padded, 0);
                var logits = Model.NextTokenLogits(padded, window.Length - 1);
                if (vocabulary is int valid && valid > 0 && valid < logits.Length)
                    logits = logits[..valid];
                tokens.Add(Sample(logits, temperature, random));
            }
            return tokens.Skip(prompt.Length).ToArray();
        }

        private static int Sample(float[] logits, float temperature, Random random)
        {
            int argmax = Array.IndexOf(logits, logits.Max());
            if (temperature <= 0f)
                return argmax;
            double max = logits[argmax];
            var weights = logits.Select(z => Math.Exp((z - max) / temperature)).ToArray();
            double u = random.NextDouble() * weights.Sum();
            for (int v = 0; v < weights.Length; v++)
            {
                u -= weights[v];
                if (u <= 0)
                    return v;
            }
            return weights.Length - 1;
        }

        public void Dispose()
        {
            Model.Dispose();
            data.Dispose();
        }
    }
}
