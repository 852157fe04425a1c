namespace XFormers.Generators.Models
{
    /// <summary>
    /// How a tensor-core kernel splits its output columns (O; dK and dV; dQ) across groups: <see cref="Count"/> slices of
    /// <see cref="Width"/> columns (a multiple of 16), the last one narrower where Width does not divide the head dim. Each
    /// group of a row tile recomputes S (and P, dP) over the whole head dim and accumulates only its slice, so that the
    /// accumulators of a large head dim fit in registers; one slice is the whole head dim.
    /// </summary>
    internal sealed record ColumnSlices(int Width, int Count, int HeadDim)
    {
        public static ColumnSlices Whole(int headDim) => new(headDim, 1, headDim);

        public bool Sliced => Count > 1;

        /// <summary>Whether the last slice ends before Width: its groups skip the 16-column steps at or past HeadDim.</summary>
        public bool Uneven => Width * Count != HeadDim;

        /// <summary>What a kernel adds to a column of its slice: <c>column0 + </c> when sliced (the slice's first column), else nothing.</summary>
        public string Column => Sliced ? "column0 + " : "";

        /// <summary>The first 16-column step of a slice that the last (narrower) slice lacks: steps from it test the column.</summary>
        public int GuardedStep => Uneven ? (HeadDim - (Count - 1) * Width) / 16 : Width / 16;

        /// <summary>The same for the 8-column output tiles.</summary>
        public int GuardedTile => 2 * GuardedStep;

        /// <summary>Last index of a slice's 8-column output tiles.</summary>
        public int OTileLast => Width / 8 - 1;

        /// <summary>Last index of a slice's 16-column steps (ldmatrix.x4.trans pairs of output tiles).</summary>
        public int DStepLast => Width / 16 - 1;
    }
}
