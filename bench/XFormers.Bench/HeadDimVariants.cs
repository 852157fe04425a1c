using XFormers.Dsl;

namespace XFormers.Bench
{
    /// <summary>
    /// Head dims the stock table does not hold, for the device conformance of the mma.sync kernels' other tile plans
    /// (KERNEL-FEATURES.md, "Head dims"): 16·n + 8 over zero columns (40, 136, 248), 64-key tiles with dK/dV in slices (160),
    /// 32-key tiles with dK/dV and dQ in slices (192), and 248's ragged staging and uneven slices.
    /// </summary>
    internal static partial class HeadDimVariants
    {
        [Attention(Mask = MaskKind.Causal, HeadDim = 40, DType = DType.Float16)]
        internal static partial AttentionKernel Causal_None_F16_40();

        [Attention(Mask = MaskKind.None, HeadDim = 136, DType = DType.BFloat16)]
        internal static partial AttentionKernel None_None_BF16_136();

        [Attention(Mask = MaskKind.Causal, HeadDim = 160, DType = DType.Float16)]
        internal static partial AttentionKernel Causal_None_F16_160();

        [Attention(Mask = MaskKind.None, HeadDim = 192, DType = DType.BFloat16)]
        internal static partial AttentionKernel None_None_BF16_192();

        [Attention(Mask = MaskKind.Causal, HeadDim = 248, DType = DType.Float16)]
        internal static partial AttentionKernel Causal_None_F16_248();
    }
}
