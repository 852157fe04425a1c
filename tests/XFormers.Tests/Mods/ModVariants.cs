namespace XFormers.Tests.Mods;

/// <summary>Variants with score and mask mods, declared the way a user would (docs/DSL.md).</summary>
public static partial class ModVariants
{
    /// <summary>Run-time arguments: scalars and tables the mods read.</summary>
    public struct Args
    {
        public float Cap;
        public int Window;
        public int Prefix;
        public Tensor<int> DocId;
        public Tensor<float> Slopes;
    }

    // Softcapping (Gemma 2), with the cap chosen at run time.
    [Attention(HeadDim = 32, DType = DType.Float32, ScoreMod = nameof(Softcap))]
    public static partial AttentionKernel SoftcapF32();

    [Attention(HeadDim = 32, DType = DType.Float16, ScoreMod = nameof(Softcap))]
    public static partial AttentionKernel SoftcapF16();

    static float Softcap(float score, int batch, int head, int q, int kv, in Args args) => args.Cap * MathF.Tanh(score / args.Cap);

    // A sliding window (Mistral) of a run-time width.
    [Attention(HeadDim = 32, DType = DType.Float32, MaskMod = nameof(SlidingWindow))]
    public static partial AttentionKernel WindowF32();

    [Attention(HeadDim = 32, DType = DType.Float16, MaskMod = nameof(SlidingWindow))]
    public static partial AttentionKernel WindowF16();

    static bool SlidingWindow(int batch, int head, int q, int kv, in Args args) => q >= kv && q - kv < args.Window;

    // Document masking: tokens attend within their document, read from a per-token table.
    [Attention(HeadDim = 32, DType = DType.Float32, MaskMod = nameof(SameDocument))]
    public static partial AttentionKernel DocumentF32();

    [Attention(HeadDim = 32, DType = DType.Float16, MaskMod = nameof(SameDocument))]
    public static partial AttentionKernel DocumentF16();

    static bool SameDocument(int batch, int head, int q, int kv, in Args args) => args.DocId[q] == args.DocId[kv];

    // Prefix-LM: the prefix is bidirectional, the rest causal.
    [Attention(HeadDim = 32, DType = DType.Float32, MaskMod = nameof(PrefixLm))]
    public static partial AttentionKernel PrefixLmF32();

    static bool PrefixLm(int batch, int head, int q, int kv, in Args args) => kv < args.Prefix || q >= kv;

    // ALiBi written as a score mod, with the slopes in a per-head table: must equal the built-in ALiBi.
    [Attention(HeadDim = 32, DType = DType.Float32, Mask = MaskKind.Causal, ScoreMod = nameof(Alibi))]
    public static partial AttentionKernel AlibiF32();

    static float Alibi(float score, int batch, int head, int q, int kv, in Args args) => score + args.Slopes[head] * (kv - q);

    // A mod with a declared mask and a tensor bias (whose gradient the score mod's derivative scales), no arguments.
    [Attention(HeadDim = 32, DType = DType.Float32, Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, ScoreMod = nameof(Softcap5), MaskMod = nameof(EveryThirdKey))]
    public static partial AttentionKernel CausalBiasModsF32();

    [Attention(HeadDim = 32, DType = DType.Float16, Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, ScoreMod = nameof(Softcap5), MaskMod = nameof(EveryThirdKey))]
    public static partial AttentionKernel CausalBiasModsF16();

    static float Softcap5(float score, int batch, int head, int q, int kv)
    {
        const float cap = 5f;
        var t = MathF.Tanh(score / cap);
        return cap * t;
    }

    static bool EveryThirdKey(int batch, int head, int q, int kv) => kv % 3 != 1;

    // Rows that see nothing: every query row q with q % 4 == 2 is fully masked.
    [Attention(HeadDim = 32, DType = DType.Float32, MaskMod = nameof(SomeRowsBlind))]
    public static partial AttentionKernel BlindRowsF32();

    static bool SomeRowsBlind(int batch, int head, int q, int kv) => q % 4 != 2;

    // Positions within segments: a window inside each block-diagonal segment, per head.
    [Attention(HeadDim = 32, DType = DType.Float32, Mask = MaskKind.BlockDiagonal, ScoreMod = nameof(HeadScaled), MaskMod = nameof(LocalInSegment))]
    public static partial AttentionKernel SegmentModsF32();

    static float HeadScaled(float score, int batch, int head, int q, int kv) => head == 0 ? score : MathF.Max(score, -2f) + 0.1f * batch;

    static bool LocalInSegment(int batch, int head, int q, int kv) => Math.Abs(q - kv) <= 3 + head;
}
