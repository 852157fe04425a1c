using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>
    /// Block masks of variants with a mask mod (FlexAttention's <c>create_block_mask</c>): for a tile shape, each tile of the
    /// score matrix is classed as hidden (skipped), partial (masked element by element) or visible (no mask evaluated). The
    /// generated classifier evaluates the mask, built-in mask included, on every score once; the result stays on the device,
    /// cached per accelerator by variant, tile shape, problem shape, segments and the mods' arguments (a table's version is
    /// part of the key, so a write to it makes a new mask). The cache holds the most recent <see cref="Capacity"/> masks
    /// per accelerator and is released with it.
    /// </summary>
    internal static class BlockMasks
    {
        public const int Capacity = 16;

        private static readonly ConditionalWeakTable<Accelerator, Cache> Caches = new();

        private sealed record Key(
            string Variant, int Rows, int Cols, int Batch, int Heads, int Mq, int Mkv, int Window,
            object? SegmentBuffer, long SegmentOffset, ModBinding.Key? Arguments);

        private sealed class Entry
        {
            public Entry(Key key, MemoryBuffer1D<byte, Stride1D.Dense> classes)
            {
                Key = key;
                Classes = classes;
            }

            public Key Key { get; }
            public MemoryBuffer1D<byte, Stride1D.Dense> Classes { get; }
            /// <summary>The classes as lists (<see cref="AttentionArgs{T}.BlockList"/>), made on first request.</summary>
            public MemoryBuffer1D<int, Stride1D.Dense>? List { get; set; }

            /// <summary>The classes as lists by key tile for the sm_90a dK/dV pass (<see cref="Columns{T}"/>), made on first request.</summary>
            public MemoryBuffer1D<int, Stride1D.Dense>? ColumnList { get; set; }

            /// <summary>The group size (query heads a key/value head serves) <see cref="ColumnList"/> was made for.</summary>
            public int ColumnGroup { get; set; }

            public void Dispose()
            {
                Classes.Dispose();
                List?.Dispose();
                ColumnList?.Dispose();
            }
        }

        private sealed class Cache
        {
            public readonly LinkedList<Entry> Entries = new();
        }

        /// <summary>
        /// One thread per row of tiles: the indices of the tiles not hidden, in order, each times 2 plus its full bit (0 for
        /// every tile when <paramref name="withoutFullBits"/> is 1: every listed tile then evaluates the mask). The kernel
        /// keeps this five-parameter shape: its four-parameter form (without the flag) produced wrong lists on the H200
        /// while the same code passed on the CPU accelerator; this one passed every mods case there (docs/PERF.md).
        /// </summary>
        private static void CompactKernel(Index1D row, ArrayView<byte> classes, ArrayView<int> list, int cols, int withoutFullBits)
        {
            long source = (long)(int)row * cols, target = (long)(int)row * (cols + 1);
            int count = 0;
            for (int tile = 0; tile < cols; tile++)
            {
                int value = classes[source + tile];
                if (value != 0)
                {
                    list[target + 1 + count] = 2 * tile + (value == 2 && withoutFullBits == 0 ? 1 : 0);
                    count++;
                }
            }
            list[target] = count;
        }

        /// <summary>
        /// One thread per (batch, key/value head, key tile) row of the sm_90a dK/dV pass's list: the (query head within the
        /// group g, query tile r) pairs whose tile is not hidden, as 2 · (g · tilesM + r) plus the full bit, g-major. A mask
        /// that reads no head has one row per key tile, each pair's class read from the one head row of classes.
        /// </summary>
        private static void CompactColumnsKernel(
            Index1D index, ArrayView<byte> classes, ArrayView<int> list, int tilesM, int tilesN, int group, int kvHeadRows, int readsHead)
        {
            int col = index % tilesN, rest = index / tilesN;
            int hk = rest % kvHeadRows, batch = rest / kvHeadRows;
            int heads = readsHead != 0 ? kvHeadRows * group : 1;
            long target = (long)(int)index * (group * tilesM + 1);
            int count = 0;
            for (int g = 0; g < group; g++)
            {
                int h = readsHead != 0 ? hk * group + g : 0;
                long rowBase = ((long)batch * heads + h) * tilesM;
                for (int r = 0; r < tilesM; r++)
                {
                    int value = classes[(rowBase + r) * tilesN + col];
                    if (value != 0)
                    {
                        list[target + 1 + count] = 2 * (g * tilesM + r) + (value == 2 ? 1 : 0);
                        count++;
                    }
                }
            }
            list[target] = count;
        }

        /// <summary>
        /// A block list as an sm_90a kernel reads it: the list, and its row of (b, head, block) at b · RowsB + head · RowsH +
        /// block, each row <see cref="Cols"/> + 1 ints.
        /// </summary>
        internal readonly record struct ListLayout(ArrayView<int> List, int RowsB, int RowsH, int Cols);

        /// <summary>The block list by query tile (the forward's and the dQ pass's) for tiles of <paramref name="rows"/> queries × <paramref name="cols"/> keys.</summary>
        public static ListLayout Rows<T>(
            Accelerator accelerator, AttentionVariant variant, ModBinding? arguments, Action<KernelConfig, AttentionArgs<T>> classifier, in AttentionArgs<T> args, int rows, int cols)
            where T : unmanaged
        {
            var result = args;
            AttachEntry(accelerator, variant, arguments, classifier, ref result, rows, cols, list: true);
            int width = Math.Max(1, result.BlocksCols);
            return new ListLayout(result.BlockList, result.BlocksStrideB / width, result.BlocksStrideH / width, result.BlocksCols);
        }

        /// <summary>
        /// The block list by key tile for the sm_90a dK/dV pass, for tiles of <paramref name="rows"/> queries ×
        /// <paramref name="cols"/> keys: a row per (batch, key/value head, key tile) the mask reads, listing the (query head
        /// within the group, query tile) pairs to visit (<see cref="CompactColumnsKernel"/>).
        /// </summary>
        public static ListLayout Columns<T>(
            Accelerator accelerator, AttentionVariant variant, ModBinding? arguments, Action<KernelConfig, AttentionArgs<T>> classifier, in AttentionArgs<T> args, int rows, int cols)
            where T : unmanaged
        {
            var result = args;
            var entry = AttachEntry(accelerator, variant, arguments, classifier, ref result, rows, cols);
            if (entry is null)
                return default;
            int tilesM = (args.Mq + rows - 1) / rows, tilesN = (args.Mkv + cols - 1) / cols;
            int group = Math.Max(1, args.GroupSize);
            int batches = variant.MaskReadsBatch ? args.Batch : 1, kvHeadRows = variant.MaskReadsHead ? args.Hkv : 1;
            var cache = Caches.GetValue(accelerator, static _ => new Cache());
            lock (cache)
            {
                if (entry.ColumnList is null || entry.ColumnGroup != group)
                {
                    if (entry.ColumnList is not null)
                    {
                        // Stream-ordered launches may still read the old list: wait before freeing it.
                        accelerator.Synchronize();
                        entry.ColumnList.Dispose();
                    }
                    int listRows = batches * kvHeadRows * tilesN;
                    entry.ColumnList = accelerator.Allocate1D<int>((long)listRows * (group * tilesM + 1));
                    entry.ColumnGroup = group;
                    var compact = KernelCache.GetOrAdd(accelerator,
                        (Action<Index1D, ArrayView<byte>, ArrayView<int>, int, int, int, int, int>)CompactColumnsKernel,
                        static (acc, k) => acc.LoadAutoGroupedStreamKernel(k));
                    compact(listRows, entry.Classes.View, entry.ColumnList.View, tilesM, tilesN, group, kvHeadRows, variant.MaskReadsHead ? 1 : 0);
                }
                return new ListLayout(entry.ColumnList.View, variant.MaskReadsBatch ? kvHeadRows * tilesN : 0, variant.MaskReadsHead ? tilesN : 0, group * tilesM);
            }
        }

        /// <summary>
        /// Sets <paramref name="args"/>' block mask for tiles of <paramref name="rows"/> × <paramref name="cols"/>, classifying them
        /// first when not cached; returns the cache entry (null for an empty problem).
        /// </summary>
        private static Entry? AttachEntry<T>(
            Accelerator accelerator, AttentionVariant variant, ModBinding? arguments, Action<KernelConfig, AttentionArgs<T>> classifier, ref AttentionArgs<T> args, int rows, int cols, bool list = false)
            where T : unmanaged
        {
            int tilesM = (args.Mq + rows - 1) / rows, tilesN = (args.Mkv + cols - 1) / cols;
            int batches = variant.MaskReadsBatch ? args.Batch : 1, heads = variant.MaskReadsHead ? args.Hq : 1;
            args.BlockRows = rows;
            args.BlockCols = cols;
            args.BlocksCols = tilesN;
            args.BlocksStrideH = variant.MaskReadsHead ? tilesM * tilesN : 0;
            args.BlocksStrideB = variant.MaskReadsBatch ? heads * tilesM * tilesN : 0;
            long length = (long)batches * heads * tilesM * tilesN;
            if (length == 0)
                return null;

            object? segmentBuffer = null;
            long segmentOffset = 0;
            if (args.QStart.IsValid)
            {
                segmentBuffer = ((IContiguousArrayView)args.QStart).Buffer;
                segmentOffset = ((IContiguousArrayView)args.QStart).IndexInBytes;
            }
            var key = new Key(variant.Name, rows, cols, batches, heads, args.Mq, args.Mkv, args.Window, segmentBuffer, segmentOffset, arguments?.Identity());
            var cache = Caches.GetValue(accelerator, static _ => new Cache());
            lock (cache)
            {
                Entry? found = null;
                for (var node = cache.Entries.First; node is not null; node = node.Next)
                {
                    if (node.Value.Key.Equals(key))
                    {
                        cache.Entries.Remove(node);
                        cache.Entries.AddFirst(node);
                        found = node.Value;
                        break;
                    }
                }
                if (found is null)
                {
                    found = new Entry(key, accelerator.Allocate1D<byte>(length));
                    args.Blocks = found.Classes.View;
                    // The classifier writes every tile's class: one thread per tile, rows of 32 tiles per group.
                    classifier(new KernelConfig(new Index3D((tilesN + 31) / 32, tilesM, batches * heads), new Index3D(32, 1, 1)), args);
                    cache.Entries.AddFirst(found);
                    while (cache.Entries.Count > Capacity)
                    {
                        // Stream-ordered launches may still read the evicted mask: wait before freeing it.
                        accelerator.Synchronize();
                        cache.Entries.Last!.Value.Dispose();
                        cache.Entries.RemoveLast();
                    }
                }
                args.Blocks = found.Classes.View;
                if (list)
                {
                    if (found.List is null)
                    {
                        int tileRows = batches * heads * tilesM;
                        found.List = accelerator.Allocate1D<int>((long)tileRows * (tilesN + 1));
                        var compact = KernelCache.GetOrAdd(accelerator, (Action<Index1D, ArrayView<byte>, ArrayView<int>, int, int>)CompactKernel,
                            static (acc, k) => acc.LoadAutoGroupedStreamKernel(k));
                        compact(tileRows, found.Classes.View, found.List.View, tilesN, 0);
                    }
                    args.BlockList = found.List.View;
                }
                return found;
            }
        }

        /// <summary>Sets <paramref name="args"/>' block mask for tiles of <paramref name="rows"/> × <paramref name="cols"/>, classifying them first when not cached.</summary>
        public static void Attach<T>(
            Accelerator accelerator, AttentionVariant variant, ModBinding? arguments, Action<KernelConfig, AttentionArgs<T>> classifier, ref AttentionArgs<T> args, int rows, int cols, bool list = false)
            where T : unmanaged =>
            AttachEntry(accelerator, variant, arguments, classifier, ref args, rows, cols, list);

        /// <summary>Frees the masks kept for <paramref name="accelerator"/> (its context is being disposed).</summary>
        public static void Release(Accelerator accelerator)
        {
            if (!Caches.TryGetValue(accelerator, out var cache))
                return;
            lock (cache)
            {
                foreach (var entry in cache.Entries)
                    entry.Dispose();
                cache.Entries.Clear();
            }
            Caches.Remove(accelerator);
        }
    }
}
