namespace XFormers.Generators.Models
{
    /// <summary>
    /// How a tensor-core kernel splits its output columns (O; dK and dV; dQ) across groups: <see cref="Count"/> slices of
    /// <see cref="Width"/> columns (a multiple of 16) of the head dim rounded up to 16 (<see cref="StepDim"/>). Each group of
    /// a row tile recomputes S (and P, dP) over the whole head dim and accumulates only its slice, so that the accumulators
    /// of a large head dim fit in registers; one slice is the whole head dim. Columns past <see cref="HeadDim"/> (the last
    /// slice's, or the 8 zero columns of a head dim of 16·n + 8) are computed from zeros and never written.
    /// </summary>
    internal sealed record ColumnSlices(int Width, int Count, int HeadDim)
    {
        public static ColumnSlices Whole(int headDim) => new(StepDimOf(headDim), 1, headDim);

        /// <summary>The head dim rounded up to whole 16-column k-steps of mma.sync.m16n8k16.</summary>
        public static int StepDimOf(int headDim) => (headDim + 15) / 16 * 16;

        public int StepDim => StepDimOf(HeadDim);

        public bool Sliced => Count > 1;

        /// <summary>Where the last slice starts.</summary>
        private int LastStart => (Count - 1) * Width;

        /// <summary>Whether the last slice ends before Width: its groups skip the 16-column steps at or past HeadDim.</summary>
        public bool Uneven => Sliced && LastStart + Width > StepDim;

        /// <summary>What a kernel adds to a column of its slice: <c>column0 + </c> when sliced (the slice's first column), else nothing.</summary>
        public string Column => Sliced ? "column0 + " : "";

        /// <summary>The first 16-column step of a slice that the last slice may lack (it starts at or past HeadDim): steps from it test the column.</summary>
        public int GuardedStep => Sliced && LastStart + Width > StepDim ? (HeadDim - LastStart + 15) / 16 : Width / 16;

        /// <summary>The first 8-column output tile that the last slice may lack: tiles from it test the column before they are written.</summary>
        public int GuardedTile => Sliced && LastStart + Width > HeadDim ? (HeadDim - LastStart) / 8 : Width / 8;

        /// <summary>Output tiles a slice writes at most: all of them when sliced (the guard decides), else HeadDim / 8.</summary>
        public int WrittenTiles => Sliced ? Width / 8 : HeadDim / 8;

        /// <summary>A slice's 8-column output tiles (its accumulators).</summary>
        public int OTiles => Width / 8;

        /// <summary>A slice's 16-column steps (ldmatrix.x4.trans pairs of output tiles).</summary>
        public int DSteps => Width / 16;
    }
}
