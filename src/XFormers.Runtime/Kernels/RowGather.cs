using System;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Kernels
{
    /// <summary>
    /// dst row r = src row <c>map[r]</c>, rows of <c>width</c> elements; a row whose map entry is −1 is zero. Packs
    /// query rows into a layout of pieces (one per sequence and key chunk) and gathers a paged KV cache into contiguous
    /// rows. One thread per element; elements move as raw 2-, 4- or 8-byte words, so one compiled kernel serves every
    /// element type of a size.
    /// </summary>
    internal static class RowGather
    {
        public static unsafe void Gather<T>(Accelerator accelerator, ArrayView<T> source, ArrayView<T> destination, ArrayView<int> map, long width)
            where T : unmanaged
        {
            switch (sizeof(T))
            {
                case 2: Launch(accelerator, source.Cast<ushort>(), destination.Cast<ushort>(), map, width); break;
                case 4: Launch(accelerator, source.Cast<uint>(), destination.Cast<uint>(), map, width); break;
                case 8: Launch(accelerator, source.Cast<ulong>(), destination.Cast<ulong>(), map, width); break;
                default: throw new NotSupportedException($"row gathers move 2-, 4- or 8-byte elements; {typeof(T).Name} has {sizeof(T)}.");
            }
        }

        private static void Launch<TWord>(Accelerator accelerator, ArrayView<TWord> source, ArrayView<TWord> destination, ArrayView<int> map, long width)
            where TWord : unmanaged
        {
            if (destination.Length == 0)
                return;
            var kernel = KernelCache.GetOrAdd(
                accelerator,
                (typeof(RowGather), typeof(TWord)),
                static (acc, _) => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<TWord>, ArrayView<TWord>, ArrayView<int>, long>(GatherKernel));
            kernel(checked((int)destination.Length), source, destination, map, width);
        }

        private static void GatherKernel<TWord>(Index1D i, ArrayView<TWord> source, ArrayView<TWord> destination, ArrayView<int> map, long width)
            where TWord : unmanaged
        {
            long row = i / width;
            int from = map[row];
            destination[i] = from < 0 ? default : source[from * width + i % width];
        }
    }
}
