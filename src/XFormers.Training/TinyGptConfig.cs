using System;
using System.Collections.Generic;
using System.Globalization;
using XFormers.Dsl;

namespace XFormers.Training
{
    /// <summary>
    /// The shape and optimizer settings of a <see cref="TinyGpt{T, TConvert}"/>. Defaults are the seed's:
    /// vocab 64, d 128, 3 layers, 8 heads, sequence 64, batch 64, AdamW lr 3e-3, 400 steps, fp16 compute
    /// with dynamic loss scaling.
    /// </summary>
    public sealed record TinyGptConfig
    {
        public int Vocab { get; init; } = 64;

        public int Dim { get; init; } = 128;

        public int Layers { get; init; } = 3;

        public int Heads { get; init; } = 8;

        public int Sequence { get; init; } = 64;

        public int Batch { get; init; } = 64;

        /// <summary>SwiGLU hidden width (4·d by default).</summary>
        public int Hidden { get; init; }

        public DType DType { get; init; } = DType.Float16;

        public float LearningRate { get; init; } = 3e-3f;

        public float WeightDecay { get; init; } = 0.01f;

        public int Steps { get; init; } = 400;

        public int Seed { get; init; } = 1337;

        public int HiddenWidth => Hidden > 0 ? Hidden : 4 * Dim;

        public int HeadDim => Dim / Heads;

        /// <summary>Throws when the shape cannot be built.</summary>
        public void Validate()
        {
            if (Vocab < 2 || Dim < 8 || Layers < 1 || Heads < 1 || Sequence < 1 || Batch < 1 || Steps < 0)
                throw new ArgumentException($"invalid configuration: {this}.");
            if (Dim % Heads != 0)
                throw new ArgumentException($"d = {Dim} is not a multiple of heads = {Heads}.");
        }

        /// <summary>The configuration as string metadata (checkpoints).</summary>
        public Dictionary<string, string> ToMetadata() => new()
        {
            ["vocab"] = Vocab.ToString(CultureInfo.InvariantCulture),
            ["d"] = Dim.ToString(CultureInfo.InvariantCulture),
            ["layers"] = Layers.ToString(CultureInfo.InvariantCulture),
            ["heads"] = Heads.ToString(CultureInfo.InvariantCulture),
            ["seq"] = Sequence.ToString(CultureInfo.InvariantCulture),
            ["batch"] = Batch.ToString(CultureInfo.InvariantCulture),
            ["hidden"] = HiddenWidth.ToString(CultureInfo.InvariantCulture),
            ["dtype"] = DType.ToString(),
            ["lr"] = LearningRate.ToString("R", CultureInfo.InvariantCulture),
            ["weight_decay"] = WeightDecay.ToString("R", CultureInfo.InvariantCulture),
            ["steps"] = Steps.ToString(CultureInfo.InvariantCulture),
            ["seed"] = Seed.ToString(CultureInfo.InvariantCulture),
        };

        /// <summary>Reads a configuration written by <see cref="ToMetadata"/>.</summary>
        public static TinyGptConfig FromMetadata(IReadOnlyDictionary<string, string> m)
        {
            int I(string key) => int.Parse(m[key], CultureInfo.InvariantCulture);
            float F(string key) => float.Parse(m[key], CultureInfo.InvariantCulture);
            return new TinyGptConfig
            {
                Vocab = I("vocab"),
                Dim = I("d"),
                Layers = I("layers"),
                Heads = I("heads"),
                Sequence = I("seq"),
                Batch = I("batch"),
                Hidden = I("hidden") == 4 * I("d") ? 0 : I("hidden"),
                DType = Enum.Parse<DType>(m["dtype"]),
                LearningRate = F("lr"),
                WeightDecay = F("weight_decay"),
                Steps = I("steps"),
                Seed = I("seed"),
            };
        }

        /// <summary>The parameters in PyTorch state_dict order, with the names scripts/tinygpt_torch.py uses.</summary>
        public IEnumerable<(string Name, int[] Shape)> ParameterLayout()
        {
            int d = Dim, h = HiddenWidth;
            yield return ("tok_emb.weight", new[] { Vocab, d });
            yield return ("pos_emb.weight", new[] { Sequence, d });
            for (int l = 0; l < Layers; l++)
            {
                string p = $"blocks.{l}.";
                yield return (p + "ln1.weight", new[] { d });
                yield return (p + "ln1.bias", new[] { d });
                yield return (p + "attn.qkv.weight", new[] { 3 * d, d });
                yield return (p + "attn.proj.weight", new[] { d, d });
                yield return (p + "ln2.weight", new[] { d });
                yield return (p + "ln2.bias", new[] { d });
                yield return (p + "mlp.w12.weight", new[] { 2 * h, d });
                yield return (p + "mlp.w3.weight", new[] { d, h });
            }
            yield return ("ln_f.weight", new[] { d });
            yield return ("ln_f.bias", new[] { d });
            yield return ("head.weight", new[] { Vocab, d });
        }

        public override string ToString() =>
            $"vocab {Vocab}, d {Dim}, {Layers} layers, {Heads} heads, seq {Sequence}, batch {Batch}, hidden {HiddenWidth}, {DType}, lr {LearningRate.ToString(CultureInfo.InvariantCulture)}, {Steps} steps";
    }
}
