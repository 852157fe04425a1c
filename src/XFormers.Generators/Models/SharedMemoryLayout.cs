using System;

namespace XFormers.Generators.Models
{
    /// <summary>
    /// The one formula for every kernel's shared memory, like FlashAttention's <c>kernel_traits.h</c>. The parser checks
    /// these sums against the budget; the model carries the dynamic byte counts into the generated constants, which the
    /// runtime's launch (<c>TensorCoreKernels</c>) and <c>AttentionVariant.ForwardSharedBytes</c> (read by
    /// <c>AttentionKernel.CanRunOn</c>) take as they are.
    /// </summary>
    internal static class SharedMemoryLayout
    {
        /// <summary>Bytes of shared memory one group may use (the 48 KB every CUDA device gives statically).</summary>
        public const int Budget = 48 * 1024;

        /// <summary>Tensor-core tiles: 4 warps of 16 query rows; the forward's key tiles have 64 rows, or 32 where 64 do not fit.</summary>
        public const int TensorCoreBlockM = 64;
        public const int TensorCoreBlockN = 64;
        public const int TensorCoreSmallBlockN = 32;
        public const int TensorCoreThreads = TensorCoreBlockM / 16 * 32;

        /// <summary>Slack to align a kernel's dynamic tiles to 128 bytes.</summary>
        private const int AlignmentSlack = 128;

        /// <summary>Six words a thread for the scalar twins' exchange (TensorCore.ExchangeWordsPerThread; static, unused on CUDA).</summary>
        public const int TensorCoreExchangeBytes = TensorCoreThreads * 6 * 4;

        /// <summary>The SIMT forward's K and V tiles (float, BlockN rows).</summary>
        public static int SimtForward(int blockN, int headDim) => 2 * blockN * headDim * sizeof(float);

        /// <summary>The SIMT dK/dV pass: Q and dO tiles (float) plus their Lse and D rows.</summary>
        public static int SimtBackwardKv(int blockM, int headDim) => 2 * blockM * headDim * sizeof(float) + 2 * blockM * sizeof(float);

        /// <summary>
        /// Halves per shared row of a tensor-core tile: the head dim in whole k-steps of 16 (a head dim of 16·n + 8 gets 8 zero
        /// columns) plus 8 of padding, so that the 8 rows an ldmatrix reads hit 32 banks.
        /// </summary>
        public static int TensorCoreRow(int headDim) => ColumnSlices.StepDimOf(headDim) + 8;

        /// <summary>
        /// The tensor-core forward's dynamic tiles: K and V (<paramref name="blockN"/> rows each; Q's rows pass through them
        /// first, so at least the group's query rows) and the alignment slack.
        /// </summary>
        public static int TensorCoreForward(int headDim, int forwardMTiles, int blockN) =>
            Math.Max(TensorCoreBlockM * forwardMTiles, 2 * blockN) * TensorCoreRow(headDim) * 2 + AlignmentSlack;

        /// <summary>The dK/dV pass's dynamic tiles: Q and dO (row-major), V's rows when its fragments do not stay in registers, the slack.</summary>
        public static int TensorCoreBackwardKv(int headDim, int blockQ, bool vInShared) =>
            (2 * blockQ + (vInShared ? TensorCoreBlockM : 0)) * TensorCoreRow(headDim) * 2 + AlignmentSlack;

        /// <summary>The dK/dV pass's static arrays: Lse and D of the tile's rows, and the exchange.</summary>
        public static int TensorCoreBackwardKvStatic(int blockQ) => 2 * blockQ * sizeof(float) + TensorCoreExchangeBytes;

        /// <summary>The dQ pass's dynamic tiles: K and V (row-major) and the slack.</summary>
        public static int TensorCoreBackwardQ(int headDim, int blockKv) => 2 * blockKv * TensorCoreRow(headDim) * 2 + AlignmentSlack;
    }
}
