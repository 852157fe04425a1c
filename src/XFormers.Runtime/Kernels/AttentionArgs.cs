using ILGPU;

namespace XFormers.Kernels
{
    /// <summary>
    /// The single parameter of every generated attention kernel. Layouts are row-major and dense:
    /// Q, O, dO, dQ [B, Mq, Hq, K]; K, V, dK, dV [B, Mkv, Hkv, K]; Lse, Delta [B, Hq, Mq] (float);
    /// Bias [B, Hq, Mq, Mkv] addressed through strides (0 broadcasts); dBias dense [B, Hq, Mq, Mkv].
    /// Block-diagonal masks pass each token's segment (QSegment [Mq], KvSegment [Mkv]) and the segments'
    /// start offsets (QStart, KvStart [S + 1]). Views a variant does not use are left empty.
    /// </summary>
    public struct AttentionArgs<T>
        where T : unmanaged
    {
        public int Batch;
        public int Mq;
        public int Mkv;
        public int Hq;
        public int Hkv;
        /// <summary>Hq / Hkv: query heads per key/value head.</summary>
        public int GroupSize;
        public float Scale;

        public ArrayView<T> Q;
        public ArrayView<T> K;
        public ArrayView<T> V;
        public ArrayView<T> O;
        public ArrayView<float> Lse;

        public ArrayView<T> Bias;
        public long BiasStrideB;
        public long BiasStrideH;
        public long BiasStrideM;
        public long BiasStrideN;
        public ArrayView<float> AlibiSlopes;

        public ArrayView<int> QSegment;
        public ArrayView<int> KvSegment;
        public ArrayView<int> QStart;
        public ArrayView<int> KvStart;

        /// <summary>A local mask's window: each query sees at most this many keys, ending at its diagonal (0 for other masks).</summary>
        public int Window;

        /// <summary>
        /// Dropout, for a variant declared with <c>Dropout = true</c> (<see cref="Dropout"/>): a score whose Philox word is
        /// below this, ⌊p · 2^32⌋, is dropped; 0 keeps every score (p = 0, and every call of a variant without dropout).
        /// </summary>
        public uint DropoutThreshold;

        /// <summary>1 / (1 − p), the factor of a kept probability (read only when <see cref="DropoutThreshold"/> is not 0).</summary>
        public float DropoutScale;

        /// <summary>The Philox key the dropout mask is drawn under; the backward's must be the forward's.</summary>
        public ulong DropoutSeed;

        public ArrayView<T> dO;
        public ArrayView<float> Delta;
        public ArrayView<T> dQ;
        public ArrayView<T> dK;
        public ArrayView<T> dV;
        public ArrayView<T> dBias;

        /// <summary>The run-time arguments of the variant's score and mask mods (empty for a variant without them).</summary>
        public ModArgs Mod;

        /// <summary>
        /// For a variant with a mask mod: each tile's class for the launch's tile shape (0: every score hidden, skip it;
        /// 1: some hidden, evaluate the mask; 2: none hidden, skip the mask), [B', H', ceil(Mq / rows), ceil(Mkv / cols)],
        /// where B' and H' are 1 when the mod reads neither the batch nor the head. Empty: every tile is class 1.
        /// </summary>
        public ArrayView<byte> Blocks;
        public int BlocksStrideB, BlocksStrideH, BlocksCols;

        /// <summary>The tile shape the block mask classifies (read by the classifier kernel only).</summary>
        public int BlockRows, BlockCols;

        /// <summary>
        /// The block mask as lists, for the sm_90a kernels: per row of tiles (the rows of <see cref="Blocks"/>), the count of
        /// tiles not hidden, then each one's index times 2, plus 1 when fully visible (BlocksCols + 1 ints a row). Empty unless asked for.
        /// </summary>
        public ArrayView<int> BlockList;
    }
}
