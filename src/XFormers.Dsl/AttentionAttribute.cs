using System;

namespace XFormers.Dsl
{
    /// <summary>
    /// Declares a memory-efficient attention variant. Put it on a <c>static partial</c> method of a
    /// <c>partial</c> class that returns <c>XFormers.AttentionKernel</c>; the XFormers generator emits,
    /// at build time, forward and backward kernels specialized to the properties below (each one a
    /// compile-time constant of the kernels) and registers the variant with the runtime's dispatch table.
    /// </summary>
    /// <example>
    /// <code>
    /// static partial class MyKernels
    /// {
    ///     [Attention(Mask = MaskKind.Causal, HeadDim = 64, DType = DType.Float16)]
    ///     public static partial AttentionKernel CausalHalf64();
    /// }
    /// </code>
    /// </example>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class AttentionAttribute : Attribute
    {
        /// <summary>Which key positions each query may attend to. Default <see cref="MaskKind.None"/>.</summary>
        public MaskKind Mask { get; set; }

        /// <summary>The additive bias applied to the scaled scores. Default <see cref="BiasKind.None"/>.</summary>
        public BiasKind Bias { get; set; }

        /// <summary>
        /// For <see cref="BiasKind.Tensor"/>: whether the backward kernel also writes dBias. Default false.
        /// </summary>
        public bool BiasGradient { get; set; }

        /// <summary>Head dimension K, a multiple of 8 from 8 to 256. Default 64.</summary>
        public int HeadDim { get; set; } = 64;

        /// <summary>
        /// Number of query heads, fixed at build time; 0 (default) accepts any count at run time.
        /// With <see cref="KvHeads"/> it fixes the grouped-query ratio.
        /// </summary>
        public int Heads { get; set; }

        /// <summary>
        /// Number of key/value heads (grouped-query or multi-query attention); it must divide
        /// <see cref="Heads"/>. 0 (default): with <see cref="Heads"/> = 0 the ratio of query heads to
        /// key/value heads is read from the tensors at run time; with <see cref="Heads"/> set, there are
        /// as many key/value heads as query heads.
        /// </summary>
        public int KvHeads { get; set; }

        /// <summary>Query rows per tile (threads per group on the SIMT path); 0 picks by head dim. Power of two, 16..128.</summary>
        public int BlockM { get; set; }

        /// <summary>Key/value rows per tile; 0 picks by head dim. A multiple of 16 from 16 to 128 that divides BlockM or is a multiple of it.</summary>
        public int BlockN { get; set; }

        /// <summary>Element type of Q, K, V, O and their gradients. Default <see cref="DType.Float16"/>.</summary>
        public DType DType { get; set; } = DType.Float16;

        /// <summary>Whether to emit the backward kernels. Default true.</summary>
        public bool Backward { get; set; } = true;

        /// <summary>
        /// The name of a static method of the declaring type that rewrites each score: <c>float M(float score, int batch,
        /// int head, int q, int kv)</c>, optionally with a trailing <c>in TArgs args</c>. The score is the scaled QKᵀ entry
        /// plus any bias. The generator compiles the method's body into every kernel and its derivative with respect to
        /// the score into the backward (docs/DSL.md lists what a mod may use). Default none.
        /// </summary>
        public string? ScoreMod { get; set; }

        /// <summary>
        /// The name of a static method of the declaring type that says which scores are kept: <c>bool M(int batch, int head,
        /// int q, int kv)</c>, optionally with a trailing <c>in TArgs args</c>; it combines with <see cref="Mask"/> (a score
        /// is kept when both keep it). Tiles it hides entirely are skipped. Default none.
        /// </summary>
        public string? MaskMod { get; set; }

        /// <summary>
        /// Whether the kernels apply attention dropout: each probability is kept with probability 1 − p and scaled by
        /// 1 / (1 − p), the mask drawn from Philox4x32-10 under a seed, both given at run time (<c>p</c> and <c>seed</c> on
        /// <c>Fmha.MemoryEfficientAttention</c> and the variant's <c>Forward</c>/<c>Backward</c>); the backward regenerates
        /// the mask from the seed. A variant without it has no dropout code and refuses p &gt; 0. Default false.
        /// </summary>
        public bool Dropout { get; set; }
    }
}
