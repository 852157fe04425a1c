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
            string Variant, int Rows, int Cols, int Batch, int Heads, int Mq, int Mkv,
            object? SegmentBuffer, long SegmentOffset, ModBinding.Key? Arguments);

        private sealed class Cache
        {
            public readonly LinkedList<(Key Key, MemoryBuffer1D<byte, Stride1D.Dense> Buffer)> Entries = new();
        }

        /// <summary>Sets <paramref name="args"/>' block mask for tiles of <paramref name="rows"/> × <paramref name="cols"/>, classifying them first when not cached.</summary>
        public static void Attach<T>(
            Accelerator accelerator, AttentionVariant variant, ModBinding? arguments, Action<KernelConfig, AttentionArgs<T>> classifier, ref AttentionArgs<T> args, int rows, int cols)
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
            var key = new Key(variant.Name, rows, cols, batches, heads, args.Mq, args.Mkv, segmentBuffer, segmentOffset, arguments?.Identity());
            var cache = Caches.GetValue(accelerator, static _ => new Cache());
            lock (cache)
            {
                for (var node = cache.Entries.First; node is not null; node = node.Next)
                {
                    if (node.Value.Key.Equals(key))
                    {
                        cache.Entries.Remove(node);
                        cache.Entries.AddFirst(node);
                        args.Blocks = node.Value.Buffer.View;
                        return;
                    }
                }
                var buffer = accelerator.Allocate1D<byte>(length);
                args.Blocks = buffer.View;
                // The classifier writes every tile's class: one thread per tile, rows of 32 tiles per group.
                classifier(new KernelConfig(new Index3D((tilesN + 31) / 32, tilesM, batches * heads), new Index3D(32, 1, 1)), args);
                cache.Entries.AddFirst((key, buffer));
                while (cache.Entries.Count > Capacity)
                {
                    // Stream-ordered launches may still read the evicted mask: wait before freeing it.
                    accelerator.Synchronize();
                    cache.Entries.Last!.Value.Buffer.Dispose();
                    cache.Entries.RemoveLast();
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
                    entry.Buffer.Dispose();
                cache.Entries.Clear();
            }
            Caches.Remove(accelerator);
        }
    }
}
