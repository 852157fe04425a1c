using System;

namespace XFormers.Hopper
{
    /// <summary>
    /// A variant's forward as an sm_90a PTX module, emitted by the generator at build time (TMA, wgmma, warp specialization),
    /// and what its launch needs: the entry point, threads per CTA, dynamic shared memory (the generator's one formula), and
    /// the query rows and key rows of its tiles. The runtime compiles it through the CUDA driver on compute capability 9.0.
    /// </summary>
    public sealed class HopperForwardModule
    {
        /// <summary>Created by generated code; the numbers come from the generator's plan of the kernel.</summary>
        /// <remarks>
        /// The PTX comes through <paramref name="ptx"/> when first needed: generated code keeps it as UTF-8 data (a u8
        /// literal), out of the assembly's string heap (which holds 16 MB of UTF-16 at most), and a process that never runs on
        /// Hopper never decodes it.
        /// </remarks>
        public HopperForwardModule(string entryPoint, int threads, int sharedBytes, int blockM, int blockN, int headDim, Func<string> ptx)
        {
            ArgumentNullException.ThrowIfNull(ptx);
            EntryPoint = entryPoint ?? throw new ArgumentNullException(nameof(entryPoint));
            this.ptx = new Lazy<string>(ptx);
            hash = new Lazy<string>(() =>
                Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Ptx))));
            Threads = threads;
            SharedBytes = sharedBytes;
            BlockM = blockM;
            BlockN = blockN;
            HeadDim = headDim;
        }

        private readonly Lazy<string> ptx;
        private readonly Lazy<string> hash;

        public string EntryPoint { get; }
        public int Threads { get; }
        /// <summary>Dynamic shared memory a CTA asks for, in bytes.</summary>
        public int SharedBytes { get; }
        /// <summary>Query rows a CTA owns.</summary>
        public int BlockM { get; }
        /// <summary>Key rows of a K or V tile.</summary>
        public int BlockN { get; }
        public int HeadDim { get; }
        /// <summary>The module's text (<c>.target sm_90a</c>).</summary>
        public string Ptx => ptx.Value;

        /// <summary>
        /// A second module with smaller CTAs, for grids this one fills badly (null when there is none); the launcher picks
        /// the one whose waves finish first.
        /// </summary>
        public HopperForwardModule? SmallGrid { get; init; }

        /// <summary>Throughput of one CTA relative to the variant's first module (the launcher's weight for waves).</summary>
        public double RelativeThroughput { get; init; } = 1.0;

        /// <summary>The PTX's SHA-256 (hex): the launcher loads a module once per context under it.</summary>
        public string Hash => hash.Value;

        public override string ToString() => $"{EntryPoint} (BlockM {BlockM}, BlockN {BlockN}, HeadDim {HeadDim}, {SharedBytes} B shared)";
    }
}
