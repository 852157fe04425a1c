namespace XFormers.Dsl
{
    /// <summary>Which keys a query may attend to. Query row i, key row j, both counted from 0.</summary>
    // Linked into the generator too (its parser reads declarations as these enums), where it is internal.
#if XFORMERS_GENERATOR
    internal
#else
    public
#endif
    enum MaskKind
    {
        /// <summary>Every query attends to every key.</summary>
        None = 0,

        /// <summary>
        /// xFormers' <c>LowerTriangularMask</c>: key j is visible to query i when j &lt;= i, aligned to the
        /// top-left corner when Mq != Mkv (query 0 sees key 0 only).
        /// </summary>
        Causal = 1,

        /// <summary>
        /// xFormers' <c>LowerTriangularFromBottomRightMask</c>: j &lt;= i + (Mkv - Mq), aligned to the
        /// bottom-right corner (the last query sees every key; decoding with a KV cache).
        /// </summary>
        CausalFromBottomRight = 2,

        /// <summary>
        /// Packed variable-length sequences (<c>BlockDiagonalMask.FromSeqlens</c>): a query sees
        /// exactly the keys of its own segment.
        /// </summary>
        BlockDiagonal = 3,

        /// <summary>Block-diagonal, and causal (top-left) inside each segment.</summary>
        BlockDiagonalCausal = 4,
        /// <summary>
        /// xFormers' <c>LowerTriangularFromBottomRightLocalAttentionMask</c>: <see cref="CausalFromBottomRight"/> with a
        /// sliding window, j − i ≤ Mkv − Mq and j − i &gt; Mkv − Mq − window: each query sees at most <c>window</c> keys,
        /// ending at its diagonal. The window is a run-time value of the call's mask.
        /// </summary>
        CausalLocalFromBottomRight = 5,
        /// <summary>
        /// xFormers' <c>BlockDiagonalCausalFromBottomRightMask</c>: block-diagonal, and causal inside each segment aligned
        /// to the segment's bottom-right corner (its last query sees all of its keys: a KV-cache step).
        /// </summary>
        BlockDiagonalCausalFromBottomRight = 6,
        /// <summary>
        /// xFormers' <c>BlockDiagonalCausalLocalAttentionMask</c>: <see cref="BlockDiagonalCausal"/> with a sliding window
        /// inside each segment (a run-time value of the call's mask).
        /// </summary>
        BlockDiagonalCausalLocal = 7,
        /// <summary>
        /// xFormers' <c>BlockDiagonalCausalLocalAttentionFromBottomRightMask</c>:
        /// <see cref="BlockDiagonalCausalFromBottomRight"/> with a sliding window inside each segment.
        /// </summary>
        BlockDiagonalCausalLocalFromBottomRight = 8,
    }
}
