namespace XFormers.Dsl
{
    /// <summary>What a <see cref="MaskKind"/> is made of: segments, a causal diagonal and where it sits, a window.</summary>
    // Linked into the generator too, where it is internal.
#if XFORMERS_GENERATOR
    internal
#else
    public
#endif
    static class MaskKindExtensions
    {
        /// <summary>Whether the mask packs sequences into segments (it needs a block-diagonal mask's seqlens at run time).</summary>
        public static bool IsBlockDiagonal(this MaskKind mask) =>
            mask is MaskKind.BlockDiagonal or MaskKind.BlockDiagonalCausal or MaskKind.BlockDiagonalCausalFromBottomRight
                or MaskKind.BlockDiagonalCausalLocal or MaskKind.BlockDiagonalCausalLocalFromBottomRight;

        /// <summary>Whether a query sees no key past its diagonal.</summary>
        public static bool IsCausal(this MaskKind mask) => mask is not (MaskKind.None or MaskKind.BlockDiagonal);

        /// <summary>
        /// Whether the diagonal is aligned to the bottom-right corner (of the whole problem, or of each segment): at
        /// j − i = Mkv − Mq rather than 0.
        /// </summary>
        public static bool IsFromBottomRight(this MaskKind mask) =>
            mask is MaskKind.CausalFromBottomRight or MaskKind.CausalLocalFromBottomRight or MaskKind.BlockDiagonalCausalFromBottomRight
                or MaskKind.BlockDiagonalCausalLocalFromBottomRight;

        /// <summary>Whether a query sees only the last <c>window</c> keys up to its diagonal (the window is a run-time value).</summary>
        public static bool IsLocal(this MaskKind mask) =>
            mask is MaskKind.CausalLocalFromBottomRight or MaskKind.BlockDiagonalCausalLocal or MaskKind.BlockDiagonalCausalLocalFromBottomRight;
    }
}
