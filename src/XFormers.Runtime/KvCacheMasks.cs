using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;

namespace XFormers
{
    /// <summary>
    /// Masks for inference with a KV cache (xFormers' <c>BlockDiagonalPaddedKeysMask</c> family): the queries of every
    /// sequence are packed along dim 1 of a [1, ΣqSeqlen, Hq, K] tensor, and each sequence's keys and values sit in a
    /// cache, either padded to a fixed length per sequence or in pages named by a block table. Query heads may share
    /// key/value heads (GQA/MQA). <c>Fmha.MemoryEfficientAttention</c> and
    /// <see cref="Fmha.MemoryEfficientAttentionPartial{T}"/> run them (forward only; see each class for what else does).
    /// </summary>
    public abstract class KvCacheMask : AttentionBias
    {
        private readonly int[] qSeqlens;
        private readonly int[] qStarts;
        private readonly int[] kvSeqlens;

        private protected KvCacheMask(int[] qSeqlens, int[] kvSeqlens, bool causalWithOffset)
        {
            this.qSeqlens = qSeqlens;
            this.kvSeqlens = kvSeqlens;
            qStarts = BlockDiagonalMask.Starts(qSeqlens);
            IsCausalWithOffset = causalWithOffset;
        }

        /// <summary>
        /// Whether each sequence's queries are causal and aligned to the bottom right of its keys: query a of a sequence
        /// with qSeqlen queries and kvSeqlen keys sees key t when t ≤ a + kvSeqlen − qSeqlen (the last query sees every
        /// key; a query with nothing to see gets O = 0 and LSE = −∞). Otherwise every query sees all its sequence's keys.
        /// </summary>
        public bool IsCausalWithOffset { get; }

        /// <summary>Number of sequences.</summary>
        public int Count => qSeqlens.Length;

        /// <summary>Query lengths.</summary>
        public IReadOnlyList<int> QSeqlens => qSeqlens;

        /// <summary>Query start offsets in the packed query, Count + 1 of them (the last is the total).</summary>
        public IReadOnlyList<int> QSeqStarts => qStarts;

        /// <summary>Key/value lengths: how much of each sequence's cache is filled.</summary>
        public IReadOnlyList<int> KvSeqlens => kvSeqlens;

        /// <summary>Total query tokens.</summary>
        public int TotalQ => qStarts[^1];

        public override MaskKind Mask => IsCausalWithOffset ? MaskKind.BlockDiagonalCausal : MaskKind.BlockDiagonal;

        /// <summary>Where each sequence's keys start in the key tensor (after the paged gather, for paged masks).</summary>
        internal abstract int[] KeyStarts();

        /// <summary>An <see cref="ArgumentException"/> on attnBias when key's dim 1 (<paramref name="keyRows"/>) does not hold this cache.</summary>
        internal abstract void CheckKeyRows(int keyRows, string keyShape);

        /// <summary>For a paged mask, the key row each gathered row reads (sequence after sequence, KvSeqlens rows each); else null.</summary>
        internal int[]? GatherMap() => Pages?.GatherMap(kvSeqlens);

        /// <summary>For a paged mask, its block table and page size; else null.</summary>
        internal virtual PagedCache? Pages => null;

        private readonly ConditionalWeakTable<Accelerator, DecodeTables> decodeTables = new();

        /// <summary>The decode kernel's sequence table and block table on <paramref name="accelerator"/>, uploaded once.</summary>
        internal DecodeTables OnDeviceForDecode(Accelerator accelerator) =>
            decodeTables.GetValue(accelerator, acc => new DecodeTables(acc, this));

        /// <summary>
        /// Four ints a sequence (qStart, qLen, kvStart, kvLen) and, for a paged mask, the block table row by row: what
        /// <see cref="Kernels.DecodeAttention"/> reads.
        /// </summary>
        internal sealed class DecodeTables
        {
            public DecodeTables(Accelerator accelerator, KvCacheMask mask)
            {
                var starts = mask.KeyStarts();
                var sequences = new int[4 * mask.Count];
                for (int s = 0; s < mask.Count; s++)
                {
                    sequences[4 * s] = mask.qStarts[s];
                    sequences[4 * s + 1] = mask.qSeqlens[s];
                    sequences[4 * s + 2] = starts[s];
                    sequences[4 * s + 3] = mask.kvSeqlens[s];
                }
                Sequences = BlockDiagonalMask.DeviceSegments.Upload(accelerator, sequences);
                var table = mask.Pages?.Table;
                BlockTable = BlockDiagonalMask.DeviceSegments.Upload(accelerator, table is null ? Array.Empty<int>() : table.Cast<int>().ToArray());
            }

            public MemoryBuffer1D<int, Stride1D.Dense> Sequences { get; }

            public MemoryBuffer1D<int, Stride1D.Dense> BlockTable { get; }
        }

        public override string ToString() =>
            $"{GetType().Name}(q=[{string.Join(", ", qSeqlens)}], kv=[{string.Join(", ", kvSeqlens)}]{Describe()})";

        private protected abstract string Describe();
    }

    /// <summary>
    /// xFormers' <c>BlockDiagonalPaddedKeysMask</c>: sequence s's keys are rows [s · KvPadding, s · KvPadding + kvSeqlen[s])
    /// of a [1, Count · KvPadding, Hkv, K] cache; the rest of its padding is never read. Every query sees all the keys of
    /// its sequence. Besides <c>Fmha.MemoryEfficientAttention</c>, it runs through every <see cref="Fmha"/>
    /// call as a block-diagonal mask (<see cref="AttentionBias.Segments"/>), the backward included.
    /// </summary>
    public sealed class BlockDiagonalPaddedKeysMask : KvCacheMask
    {
        private readonly BlockDiagonalMask segments;

        private BlockDiagonalPaddedKeysMask(int[] q, int kvPadding, int[] kv)
            : base(q, kv, causalWithOffset: false)
        {
            KvPadding = kvPadding;
            segments = PaddedCache.Segments(q, kvPadding, kv);
        }

        /// <summary>
        /// Sequences of <paramref name="qSeqlen"/> queries whose caches hold <paramref name="kvSeqlen"/> keys each, padded to
        /// <paramref name="kvPadding"/> rows. Lengths may be 0.
        /// </summary>
        public static BlockDiagonalPaddedKeysMask FromSeqlens(IReadOnlyList<int> qSeqlen, int kvPadding, IReadOnlyList<int> kvSeqlen)
        {
            var (q, kv) = PaddedCache.Check(qSeqlen, kvPadding, kvSeqlen);
            return new BlockDiagonalPaddedKeysMask(q, kvPadding, kv);
        }

        /// <summary>Rows of cache per sequence.</summary>
        public int KvPadding { get; }

        /// <summary>Where each sequence's keys start: s · KvPadding, Count + 1 of them.</summary>
        public IReadOnlyList<int> KvSeqStarts => PaddedCache.Starts(Count, KvPadding);

        /// <summary>The same mask over a paged cache (<see cref="PagedBlockDiagonalPaddedKeysMask"/>), xFormers' <c>make_paged</c>.</summary>
        public PagedBlockDiagonalPaddedKeysMask MakePaged(int[,] blockTable, int pageSize) =>
            PagedBlockDiagonalPaddedKeysMask.FromSeqlens(QSeqlens, KvSeqlens, blockTable, pageSize);

        /// <summary>
        /// The block-diagonal segments this mask is: sequence s's queries against its filled keys, then a segment of no
        /// queries over the rest of its padding.
        /// </summary>
        public override BlockDiagonalMask? Segments => segments;

        internal override int[] KeyStarts() => PaddedCache.Starts(Count, KvPadding);

        internal override void CheckKeyRows(int keyRows, string keyShape) => PaddedCache.CheckKeyRows(Count, KvPadding, keyRows, keyShape);

        private protected override string Describe() => $", padding {KvPadding}";
    }

    /// <summary>
    /// xFormers' <c>BlockDiagonalCausalWithOffsetPaddedKeysMask</c>: the padded cache of <see cref="BlockDiagonalPaddedKeysMask"/>,
    /// causal inside each sequence and aligned to the bottom right (see <see cref="KvCacheMask.IsCausalWithOffset"/>): the
    /// new queries of a step with a KV cache. Runs through <c>Fmha.MemoryEfficientAttention</c> and
    /// <see cref="Fmha.MemoryEfficientAttentionPartial{T}"/> (forward only).
    /// </summary>
    public sealed class BlockDiagonalCausalWithOffsetPaddedKeysMask : KvCacheMask
    {
        private BlockDiagonalCausalWithOffsetPaddedKeysMask(int[] q, int kvPadding, int[] kv)
            : base(q, kv, causalWithOffset: true) =>
            KvPadding = kvPadding;

        /// <summary>See <see cref="BlockDiagonalPaddedKeysMask.FromSeqlens"/>; qSeqlen may exceed kvSeqlen (the first queries then see nothing).</summary>
        public static BlockDiagonalCausalWithOffsetPaddedKeysMask FromSeqlens(IReadOnlyList<int> qSeqlen, int kvPadding, IReadOnlyList<int> kvSeqlen)
        {
            var (q, kv) = PaddedCache.Check(qSeqlen, kvPadding, kvSeqlen);
            return new BlockDiagonalCausalWithOffsetPaddedKeysMask(q, kvPadding, kv);
        }

        /// <summary>Rows of cache per sequence.</summary>
        public int KvPadding { get; }

        /// <summary>Where each sequence's keys start: s · KvPadding, Count + 1 of them.</summary>
        public IReadOnlyList<int> KvSeqStarts => PaddedCache.Starts(Count, KvPadding);

        /// <summary>The same mask over a paged cache (<see cref="PagedBlockDiagonalCausalWithOffsetPaddedKeysMask"/>).</summary>
        public PagedBlockDiagonalCausalWithOffsetPaddedKeysMask MakePaged(int[,] blockTable, int pageSize) =>
            PagedBlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(QSeqlens, KvSeqlens, blockTable, pageSize);

        internal override int[] KeyStarts() => PaddedCache.Starts(Count, KvPadding);

        internal override void CheckKeyRows(int keyRows, string keyShape) => PaddedCache.CheckKeyRows(Count, KvPadding, keyRows, keyShape);

        private protected override string Describe() => $", padding {KvPadding}";
    }

    /// <summary>
    /// xFormers' <c>PagedBlockDiagonalPaddedKeysMask</c>, vLLM's layout: keys and values are [1, pages · PageSize, Hkv, K],
    /// fixed-size pages in any order; row s of the block table names the pages of sequence s, in order (key t of sequence s
    /// is row <c>blockTable[s, t / PageSize] · PageSize + t % PageSize</c>). Entries past a sequence's last page are not read.
    /// Every query sees all the keys of its sequence. Runs through <c>Fmha.MemoryEfficientAttention</c> and
    /// <see cref="Fmha.MemoryEfficientAttentionPartial{T}"/> (forward only), which first gather each sequence's pages into
    /// contiguous rows on the device.
    /// </summary>
    public sealed class PagedBlockDiagonalPaddedKeysMask : KvCacheMask
    {
        private readonly PagedCache cache;

        private PagedBlockDiagonalPaddedKeysMask(int[] q, int[] kv, PagedCache cache)
            : base(q, kv, causalWithOffset: false) =>
            this.cache = cache;

        /// <summary>Sequences of <paramref name="qSeqlen"/> queries whose <paramref name="kvSeqlen"/> keys live in the pages <paramref name="blockTable"/> names.</summary>
        public static PagedBlockDiagonalPaddedKeysMask FromSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int> kvSeqlen, int[,] blockTable, int pageSize)
        {
            var (q, kv, cache) = PagedCache.Check(qSeqlen, kvSeqlen, blockTable, pageSize);
            return new PagedBlockDiagonalPaddedKeysMask(q, kv, cache);
        }

        /// <summary>Rows per page.</summary>
        public int PageSize => cache.PageSize;

        /// <summary>A copy of the block table [Count, pages per sequence].</summary>
        public int[,] BlockTable => (int[,])cache.Table.Clone();

        internal override int[] KeyStarts() => BlockDiagonalMask.Starts(KvSeqlens.ToArray());

        internal override void CheckKeyRows(int keyRows, string keyShape) => cache.CheckKeyRows(KvSeqlens, keyRows, keyShape);

        internal override PagedCache? Pages => cache;

        private protected override string Describe() => cache.Describe();
    }

    /// <summary>
    /// xFormers' <c>PagedBlockDiagonalCausalWithOffsetPaddedKeysMask</c>: the paged cache of
    /// <see cref="PagedBlockDiagonalPaddedKeysMask"/>, causal from the bottom right inside each sequence
    /// (<see cref="KvCacheMask.IsCausalWithOffset"/>).
    /// </summary>
    public sealed class PagedBlockDiagonalCausalWithOffsetPaddedKeysMask : KvCacheMask
    {
        private readonly PagedCache cache;

        private PagedBlockDiagonalCausalWithOffsetPaddedKeysMask(int[] q, int[] kv, PagedCache cache)
            : base(q, kv, causalWithOffset: true) =>
            this.cache = cache;

        /// <summary>See <see cref="PagedBlockDiagonalPaddedKeysMask.FromSeqlens"/>.</summary>
        public static PagedBlockDiagonalCausalWithOffsetPaddedKeysMask FromSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int> kvSeqlen, int[,] blockTable, int pageSize)
        {
            var (q, kv, cache) = PagedCache.Check(qSeqlen, kvSeqlen, blockTable, pageSize);
            return new PagedBlockDiagonalCausalWithOffsetPaddedKeysMask(q, kv, cache);
        }

        /// <summary>Rows per page.</summary>
        public int PageSize => cache.PageSize;

        /// <summary>A copy of the block table [Count, pages per sequence].</summary>
        public int[,] BlockTable => (int[,])cache.Table.Clone();

        internal override int[] KeyStarts() => BlockDiagonalMask.Starts(KvSeqlens.ToArray());

        internal override void CheckKeyRows(int keyRows, string keyShape) => cache.CheckKeyRows(KvSeqlens, keyRows, keyShape);

        internal override PagedCache? Pages => cache;

        private protected override string Describe() => cache.Describe();
    }

    /// <summary>The padded layout's checks and numbers, shared by the two padded masks.</summary>
    internal static class PaddedCache
    {
        public static (int[] Q, int[] Kv) Check(IReadOnlyList<int> qSeqlen, int kvPadding, IReadOnlyList<int> kvSeqlen)
        {
            if (kvPadding < 0)
                throw new ArgumentException($"kvPadding = {kvPadding} is negative.", nameof(kvPadding));
            var (q, _) = BlockDiagonalMask.CheckSeqlens(qSeqlen, null);
            var kv = CheckKvSeqlens(qSeqlen, kvSeqlen, kvPadding);
            if ((long)q.Length * kvPadding > int.MaxValue)
                throw new ArgumentException($"{q.Length} sequences of {kvPadding} rows hold more than 2^31 - 1 keys.", nameof(kvPadding));
            return (q, kv);
        }

        public static int[] Starts(int count, int padding) => Enumerable.Range(0, count + 1).Select(s => s * padding).ToArray();

        public static void CheckKeyRows(int count, int padding, int keyRows, string keyShape)
        {
            if (keyRows != count * padding)
                throw new ArgumentException($"attnBias: {count} sequences padded to {padding} keys need {count * padding} key rows, but key has {keyRows} (dim 1 of {keyShape}).", "attnBias");
        }

        /// <summary>Sequence s's queries against its filled keys, then no queries over the rest of its padding.</summary>
        public static BlockDiagonalMask Segments(int[] q, int padding, int[] kv)
        {
            var qLens = new int[2 * q.Length];
            var kvLens = new int[2 * q.Length];
            for (int s = 0; s < q.Length; s++)
            {
                qLens[2 * s] = q[s];
                kvLens[2 * s] = kv[s];
                kvLens[2 * s + 1] = padding - kv[s];
            }
            return BlockDiagonalMask.FromSeqlens(qLens, kvLens);
        }

        private static int[] CheckKvSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int> kvSeqlen, int padding)
        {
            ArgumentNullException.ThrowIfNull(kvSeqlen);
            var (_, kv) = BlockDiagonalMask.CheckSeqlens(qSeqlen, kvSeqlen);
            for (int s = 0; s < kv.Length; s++)
            {
                if (kv[s] > padding)
                    throw new ArgumentException($"kvSeqlen[{s}] = {kv[s]} exceeds kvPadding = {padding}.", nameof(kvSeqlen));
            }
            return kv;
        }
    }

    /// <summary>A paged cache's block table and page size, checked once; shared by the two paged masks.</summary>
    internal sealed class PagedCache
    {
        private PagedCache(int[,] table, int pageSize)
        {
            Table = table;
            PageSize = pageSize;
        }

        public int[,] Table { get; }

        public int PageSize { get; }

        public static (int[] Q, int[] Kv, PagedCache Cache) Check(IReadOnlyList<int> qSeqlen, IReadOnlyList<int> kvSeqlen, int[,] blockTable, int pageSize)
        {
            ArgumentNullException.ThrowIfNull(blockTable);
            if (pageSize <= 0)
                throw new ArgumentException($"pageSize = {pageSize} must be positive.", nameof(pageSize));
            ArgumentNullException.ThrowIfNull(kvSeqlen);
            var (q, kv) = BlockDiagonalMask.CheckSeqlens(qSeqlen, kvSeqlen);
            if (blockTable.GetLength(0) != q.Length)
                throw new ArgumentException($"blockTable has {blockTable.GetLength(0)} rows; there are {q.Length} sequences (one row each).", nameof(blockTable));
            int pagesPerSequence = blockTable.GetLength(1);
            for (int s = 0; s < kv.Length; s++)
            {
                long pages = ((long)kv[s] + pageSize - 1) / pageSize;
                if (pages > pagesPerSequence)
                    throw new ArgumentException($"kvSeqlen[{s}] = {kv[s]} needs {pages} pages of {pageSize}; blockTable has {pagesPerSequence} per sequence.", nameof(kvSeqlen));
                for (int p = 0; p < pages; p++)
                {
                    if (blockTable[s, p] < 0)
                        throw new ArgumentException($"blockTable[{s}, {p}] = {blockTable[s, p]} is negative.", nameof(blockTable));
                }
            }
            if (kv.Sum(x => (long)x) > int.MaxValue)
                throw new ArgumentException("The sequences hold more than 2^31 - 1 keys.", nameof(kvSeqlen));
            return (q, kv, new PagedCache((int[,])blockTable.Clone(), pageSize));
        }

        /// <summary>key must be whole pages, and every page a sequence reads must be one of them.</summary>
        public void CheckKeyRows(IReadOnlyList<int> kvSeqlens, int keyRows, string keyShape)
        {
            if (keyRows % PageSize != 0)
                throw new ArgumentException($"attnBias: key has {keyRows} rows (dim 1 of {keyShape}), not a whole number of pages of {PageSize}.", "attnBias");
            int pages = keyRows / PageSize;
            for (int s = 0; s < kvSeqlens.Count; s++)
            {
                for (int p = 0; p * PageSize < kvSeqlens[s]; p++)
                {
                    if (Table[s, p] >= pages)
                        throw new ArgumentException($"attnBias: blockTable[{s}, {p}] = {Table[s, p]} names a page past the {pages} pages key holds ({keyShape}, pages of {PageSize}).", "attnBias");
                }
            }
        }

        /// <summary>The key row of each gathered row: sequence after sequence, key t of sequence s from its page.</summary>
        public int[] GatherMap(IReadOnlyList<int> kvSeqlens)
        {
            var map = new int[kvSeqlens.Sum()];
            int row = 0;
            for (int s = 0; s < kvSeqlens.Count; s++)
            {
                for (int t = 0; t < kvSeqlens[s]; t++)
                    map[row++] = Table[s, t / PageSize] * PageSize + t % PageSize;
            }
            return map;
        }

        public string Describe() => $", pages of {PageSize}, {Table.GetLength(1)} per sequence";
    }
}
