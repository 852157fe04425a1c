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

            public void Dispose()
            {
                Classes.Dispose();
                List?.Dispose();
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

        /// <summary>Sets <paramref name="args"/>' block mask for tiles of <paramref name="rows"/> × <paramref name="cols"/>, classifying them first when not cached.</summary>
        public static void Attach<T>(
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
                return;

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
            }
        }

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
