using System;

namespace XFormers.Generators.Models
{
    /// <summary>
    /// The tensor-core kernels' shape (Templates/TensorCore.liquid and the kernel templates it includes: warp tiles of
    /// mma.sync.m16n8k16, every fragment loop unrolled by the templates). The stored values are the parser's choices; the
    /// counts the templates loop over follow from them.
    /// </summary>
    /// <param name="HeadDim">The declared head dim (a multiple of 8; one of 16·n + 8 computes over 8 more zero columns).</param>
    /// <param name="BFloat16">bf16 inputs, else fp16.</param>
    /// <param name="BlockN">Key rows per shared-memory tile of the forward (64, or 32 where 64 do not fit).</param>
    /// <param name="ForwardMTiles">
    /// 16-row m-tiles per warp of the forward (2 up to HeadDim 64 without a mask: each K/V fragment feeds two mma; else 1).
    /// </param>
    /// <param name="ForwardColumns">The forward's O columns per group (one slice up to HeadDim 208).</param>
    /// <param name="ForwardSharedBytes">Dynamic shared memory of the forward: <see cref="SharedMemoryLayout.TensorCoreForward"/>.</param>
    /// <param name="Backward">Whether the dK/dV and dQ passes are emitted (Backward = true and their tiles fit).</param>
    /// <param name="BlockQ">Query rows per shared-memory tile of the dK/dV pass (its groups own <see cref="BlockM"/> keys).</param>
    /// <param name="BlockKv">Key rows per shared-memory tile of the dQ pass (its groups own <see cref="BlockM"/> queries).</param>
    /// <param name="VInShared">
    /// Whether the dK/dV pass reads V's A fragments from a shared tile at each use instead of holding them in registers
    /// (HeadDim 128: dK, dV, K and V in registers would need ~210 of the 255 a thread can have).
    /// </param>
    /// <param name="BackwardKvColumns">The dK/dV pass's dK and dV columns per group.</param>
    /// <param name="BackwardQColumns">The dQ pass's dQ columns per group.</param>
    /// <param name="BackwardKvSharedBytes">Dynamic shared memory of the dK/dV pass: <see cref="SharedMemoryLayout.TensorCoreBackwardKv"/>.</param>
    /// <param name="BackwardQSharedBytes">Dynamic shared memory of the dQ pass: <see cref="SharedMemoryLayout.TensorCoreBackwardQ"/>.</param>
    internal sealed record TensorCorePlan(
        int HeadDim, bool BFloat16,
        int BlockN, int ForwardMTiles, ColumnSlices ForwardColumns, int ForwardSharedBytes,
        bool Backward, int BlockQ, int BlockKv, bool VInShared, ColumnSlices BackwardKvColumns, ColumnSlices BackwardQColumns,
        int BackwardKvSharedBytes, int BackwardQSharedBytes)
    {
        /// <summary>Query rows (forward, dQ) or keys (dK/dV) per group: 16 per warp.</summary>
        public int BlockM => SharedMemoryLayout.TensorCoreBlockM;
        public int Threads => SharedMemoryLayout.TensorCoreThreads;
        /// <summary>
        /// Groups the dQ kernel is compiled to hold on a multiprocessor (0: as ptxas allocates). Up to HeadDim 64 it needs
        /// fewer than 170 registers, which lets three groups of 128 threads share a multiprocessor; ptxas, left alone,
        /// allocated 177 (two groups) once the helpers' CPU twins were out of the PTX, and the dQ pass of fp16 B4 H16
        /// M4096 K64 took 8.4 ms instead of 6.6 on the H200 (docs/PERF.md).
        /// </summary>
        public int BackwardQGroupsPerMultiprocessor => HeadDim <= 64 ? 3 : 0;
        /// <summary>Halves per shared row of a tile: <see cref="SharedMemoryLayout.TensorCoreRow"/>.</summary>
        public int Row => SharedMemoryLayout.TensorCoreRow(HeadDim);
        /// <summary>The head-dim k-steps of Q·Kᵀ (HeadDim rounded up to 16, / 16).</summary>
        public int KSteps => ColumnSlices.StepDimOf(HeadDim) / 16;
        /// <summary>The k-step whose last 8 columns are zeros (a head dim of 16·n + 8: n), or −1.</summary>
        public int ZeroStep => HeadDim % 16 != 0 ? HeadDim / 16 : -1;
        /// <summary>8-column n-tiles of a BlockN-wide score row of the forward.</summary>
        public int STiles => BlockN / 8;
        /// <summary>16-column pairs of those tiles (also the k-steps of P·V).</summary>
        public int SPairs => BlockN / 16;
        /// <summary>8-byte words a thread stages of a BlockN-row K or V tile: ⌈BlockN · HeadDim / 4 / Threads⌉.</summary>
        public int StageWords => (BlockN * HeadDim / 4 + Threads - 1) / Threads;
        /// <summary>Whether Threads does not divide a tile's words (head dims of 16·n + 8 with 32-key tiles): the last stage tests its word.</summary>
        public bool StageRagged => BlockN * HeadDim / 4 % Threads != 0;
        /// <summary>8-column tiles of a BlockQ-wide Sᵀ row of the dK/dV pass.</summary>
        public int QTiles => BlockQ / 8;
        /// <summary>16-query k-steps of dV += Pᵀ dO and dK += dSᵀ Q.</summary>
        public int QPairs => BlockQ / 16;
        /// <summary>8-column tiles of a BlockKv-wide S row of the dQ pass.</summary>
        public int KvTiles => BlockKv / 8;
        /// <summary>16-key k-steps of dQ += dS K.</summary>
        public int KvPairs => BlockKv / 16;
        /// <summary>
        /// Threads per row of the D pass: the largest power of two, at most 32, that divides HeadDim / 4 (each reads
        /// HeadDim / 4 / DeltaLanes words of 8 bytes).
        /// </summary>
        public int DeltaLanes => Math.Min(32, (HeadDim / 4) & -(HeadDim / 4));
        /// <summary>The mma of one 16×8×16 tile (TensorCore.MmaM16N8K16 or its bf16 twin).</summary>
        public string Mma => BFloat16 ? "MmaM16N8K16Bf16" : "MmaM16N8K16";
        /// <summary>The dot product of four packed elements (TensorCore.Dot4Half or Dot4BFloat16), for the D pass.</summary>
        public string Dot4 => BFloat16 ? "Dot4BFloat16" : "Dot4Half";
        /// <summary>Two floats packed into a 32-bit fragment word (TensorCore.PackHalf2 or PackBFloat162).</summary>
        public string Pack => BFloat16 ? "PackBFloat162" : "PackHalf2";
        /// <summary>Four staged elements for a later pass (TensorCore.RewriteNonFiniteHalf4 or RewriteNonFiniteBFloat164).</summary>
        public string Rewrite => BFloat16 ? "RewriteNonFiniteBFloat164" : "RewriteNonFiniteHalf4";
        /// <summary>A pair of outputs with NaN where the poison pass counted (TensorCore.PoisonHalf2 or PoisonBFloat162).</summary>
        public string Poison => BFloat16 ? "PoisonBFloat162" : "PoisonHalf2";
    }
}
