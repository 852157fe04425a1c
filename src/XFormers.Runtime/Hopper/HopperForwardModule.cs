namespace XFormers.Hopper
{
    /// <summary>
    /// A variant's forward as an sm_90a PTX module, emitted by the generator at build time (TMA, wgmma, warp specialization),
    /// and what its launch needs: the entry point, threads per CTA, dynamic shared memory (the generator's one formula), and
    /// the query rows and key rows of its tiles. The runtime compiles it through the CUDA driver on compute capability 9.0.
    /// </summary>
    public sealed record HopperForwardModule(
        string EntryPoint, int Threads, int SharedBytes, int BlockM, int BlockN, int HeadDim, string Ptx)
    {
        /// <summary>
        /// A second module with smaller CTAs, for grids this one fills badly (null when there is none); the launcher picks
        /// the one whose waves finish first.
        /// </summary>
        public HopperForwardModule? SmallGrid { get; init; }

        /// <summary>Throughput of one CTA relative to the variant's first module (the launcher's weight for waves).</summary>
        public double RelativeThroughput { get; init; } = 1.0;

        /// <summary>The PTX's SHA-256 (hex), the key of the on-disk cubin cache.</summary>
        public string Hash { get; } = Sha256(Ptx);

        private static string Sha256(string text) =>
            System.Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));

        // The PTX text is long: keep it out of ToString and equality's cost where a record would print it all.
        public override string ToString() => $"{EntryPoint} (BlockM {BlockM}, BlockN {BlockN}, HeadDim {HeadDim}, {SharedBytes} B shared)";
    }
}
