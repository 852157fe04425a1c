using System;
using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Kernels
{
    /// <summary>
    /// A strided layout of up to six dimensions, padded in front with size-1 dimensions: element i of the dense
    /// row-major order sits at <c>Offset + Σ index_d · Stride_d</c>.
    /// </summary>
    internal struct StridedLayout
    {
        public const int MaxRank = 6;

        public int D0, D1, D2, D3, D4, D5;
        public long S0, S1, S2, S3, S4, S5;
        public long Offset;

        public static StridedLayout Create(ReadOnlySpan<int> shape, ReadOnlySpan<long> strides, long offset)
        {
            Span<int> d = stackalloc int[MaxRank];
            Span<long> s = stackalloc long[MaxRank];
            d.Fill(1);
            s.Clear();
            int pad = MaxRank - shape.Length;
            for (int i = 0; i < shape.Length; i++)
            {
                d[pad + i] = shape[i];
                s[pad + i] = strides[i];
            }
            return new StridedLayout
            {
                D0 = d[0], D1 = d[1], D2 = d[2], D3 = d[3], D4 = d[4], D5 = d[5],
                S0 = s[0], S1 = s[1], S2 = s[2], S3 = s[3], S4 = s[4], S5 = s[5],
                Offset = offset,
            };
        }

        /// <summary>Where the element at dense index <paramref name="i"/> lives.</summary>
        public readonly long At(long i)
        {
            long at = Offset;
            at += i % D5 * S5;
            i /= D5;
            at += i % D4 * S4;
            i /= D4;
            at += i % D3 * S3;
            i /= D3;
            at += i % D2 * S2;
            i /= D2;
            at += i % D1 * S1;
            i /= D1;
            return at + i * S0;
        }
    }

    /// <summary>
    /// Copies between a strided view and a dense tensor on the accelerator, one thread per element. Elements move
    /// as raw 2-, 4- or 8-byte words, so one compiled kernel serves every element type of a size.
    /// </summary>
    internal static class StridedCopy
    {
        private static readonly ConcurrentDictionary<(Accelerator, Type), Delegate> Loaded = new();

        /// <summary>dense[i] = strided[layout.At(i)].</summary>
        public static unsafe void Gather<T>(Accelerator accelerator, ArrayView<T> strided, ArrayView<T> dense, in StridedLayout layout)
            where T : unmanaged
        {
            switch (sizeof(T))
            {
                case 2: Launch(accelerator, strided.Cast<ushort>(), dense.Cast<ushort>(), layout, gather: true); break;
                case 4: Launch(accelerator, strided.Cast<uint>(), dense.Cast<uint>(), layout, gather: true); break;
                case 8: Launch(accelerator, strided.Cast<ulong>(), dense.Cast<ulong>(), layout, gather: true); break;
                default: throw new NotSupportedException($"strided copies move 2-, 4- or 8-byte elements; {typeof(T).Name} has {sizeof(T)}.");
            }
        }

        /// <summary>strided[layout.At(i)] = dense[i].</summary>
        public static unsafe void Scatter<T>(Accelerator accelerator, ArrayView<T> dense, ArrayView<T> strided, in StridedLayout layout)
            where T : unmanaged
        {
            switch (sizeof(T))
            {
                case 2: Launch(accelerator, strided.Cast<ushort>(), dense.Cast<ushort>(), layout, gather: false); break;
                case 4: Launch(accelerator, strided.Cast<uint>(), dense.Cast<uint>(), layout, gather: false); break;
                case 8: Launch(accelerator, strided.Cast<ulong>(), dense.Cast<ulong>(), layout, gather: false); break;
                default: throw new NotSupportedException($"strided copies move 2-, 4- or 8-byte elements; {typeof(T).Name} has {sizeof(T)}.");
            }
        }

        private static void Launch<TWord>(Accelerator accelerator, ArrayView<TWord> strided, ArrayView<TWord> dense, StridedLayout layout, bool gather)
            where TWord : unmanaged
        {
            if (dense.Length == 0)
                return;
            var kernel = (Action<Index1D, ArrayView<TWord>, ArrayView<TWord>, StridedLayout>)Loaded.GetOrAdd(
                (accelerator, gather ? typeof(TWord) : typeof(ValueTuple<TWord>)),
                key => gather
                    ? key.Item1.LoadAutoGroupedStreamKernel<Index1D, ArrayView<TWord>, ArrayView<TWord>, StridedLayout>(GatherKernel)
                    : key.Item1.LoadAutoGroupedStreamKernel<Index1D, ArrayView<TWord>, ArrayView<TWord>, StridedLayout>(ScatterKernel));
            kernel(checked((int)dense.Length), strided, dense, layout);
        }

        private static void GatherKernel<TWord>(Index1D i, ArrayView<TWord> strided, ArrayView<TWord> dense, StridedLayout layout)
            where TWord : unmanaged =>
            dense[i] = strided[layout.At(i)];

        private static void ScatterKernel<TWord>(Index1D i, ArrayView<TWord> strided, ArrayView<TWord> dense, StridedLayout layout)
            where TWord : unmanaged =>
            strided[layout.At(i)] = dense[i];
    }
}
