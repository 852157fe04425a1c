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

        public TinyGptTrainer(XFormersContext context, TinyGptConfig config, TokenBatch? data = null, AttentionKernel? attention = null, GemmBackend gemm = GemmBackend.Auto)
        {
            ArgumentNullException.ThrowIfNull(context);
            ArgumentNullException.ThrowIfNull(config);
            Context = context;
            Config = config;
            this.data = data ?? TokenBatch.Counting(context, config.Vocab, config.Seed);
            Model = TinyGpt.Create(context, config, this.data, attention, gemm);
        }

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
        /// Runs steps until <paramref name="untilStep"/> (default: the configured number), reporting each one. When
        /// <paramref name="cancellationToken"/> is cancelled, the step in progress finishes, its metrics are reported,
        /// and Train returns with <see cref="Step"/> counting the steps done (no exception): the state is whole, so a
        /// checkpoint written then resumes exactly.
        /// </summary>
        public IReadOnlyList<StepMetrics> Train(int? untilStep = null, Action<StepMetrics>? onStep = null, CancellationToken cancellationToken = default)
        {
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

        /// <summary>Writes a checkpoint atomically; <paramref name="extraMetadata"/> is stored beside the configuration.</summary>
        public void SaveCheckpoint(string path, IReadOnlyDictionary<string, string>? extraMetadata = null)
        {
            var state = Model.ReadState();
            var tensors = new List<SafeTensor>();
            foreach (var (prefix, values) in new[] { ("", state.Params), (ExpAvgPrefix, state.M), (ExpAvgSqPrefix, state.V) })
            {
                foreach (var slice in Model.Parameters)
                {
                    var part = new float[slice.Length];
                    Array.Copy(values, slice.Offset, part, 0, slice.Length);
                    tensors.Add(SafeTensor.FromFloats(prefix + slice.Name, part, slice.Shape.Select(d => (long)d).ToArray()));
                }
            }
            var metadata = Config.ToMetadata();
            metadata["format"] = "xformers-dotnet-tinygpt";
            metadata["step"] = Step.ToString(CultureInfo.InvariantCulture);
            metadata["scaler"] = string.Join(",", state.Scaler.Select(x => x.ToString("R", CultureInfo.InvariantCulture)));
            if (extraMetadata is not null)
            {
                foreach (var (key, value) in extraMetadata)
                    metadata[key] = value;
            }
            SafeTensors.Save(path, tensors, metadata);
        }

        /// <summary>The configuration and metadata stored in a checkpoint.</summary>
        public static (TinyGptConfig Config, IReadOnlyDictionary<string, string> Metadata) ReadCheckpointConfig(string path)
        {
            var (_, metadata) = SafeTensors.Load(path);
            return (TinyGptConfig.FromMetadata(metadata), metadata);
        }

        /// <summary>Restores weights, moments, scaler state and the step from a checkpoint of the same shape.</summary>
        public void LoadCheckpoint(string path)
        {
            var (tensors, metadata) = SafeTensors.Load(path);
            var stored = TinyGptConfig.FromMetadata(metadata);
            if (stored with { Steps = Config.Steps } != Config)
                throw new ArgumentException($"{path} holds a model of {stored}; this trainer is {Config}.", nameof(path));
            var count = Model.ParameterCount;
            float[] Gather(string prefix)
            {
                var flat = new float[count];
                foreach (var slice in Model.Parameters)
                {
                    if (!tensors.TryGetValue(prefix + slice.Name, out var tensor))
                        throw new ArgumentException($"{path} has no tensor {prefix + slice.Name}.", nameof(path));
                    var values = tensor.ToFloats();
                    if (values.LongLength != slice.Length)
                        throw new ArgumentException($"{prefix + slice.Name} has {values.LongLength} values; {slice} needs {slice.Length}.", nameof(path));
                    values.CopyTo(flat, slice.Offset);
                }
                return flat;
            }
            var scaler = metadata["scaler"].Split(',').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            Model.WriteState(new TrainingState(Gather(""), Gather(ExpAvgPrefix), Gather(ExpAvgSqPrefix), scaler, 0));
            Step = int.Parse(metadata["step"], CultureInfo.InvariantCulture);
        }

        /// <summary>
        /// Continues <paramref name="prompt"/> by <paramref name="count"/> tokens, sampling from softmax(logits /
        /// temperature) with a seeded generator (temperature 0: argmax).
        /// </summary>
        public int[] Generate(int[] prompt, int count, float temperature = 0.8f, int seed = 0)
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
