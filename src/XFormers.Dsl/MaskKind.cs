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
    }
}
