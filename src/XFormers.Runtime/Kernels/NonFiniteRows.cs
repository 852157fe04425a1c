using System;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Kernels
{
    /// <summary>
    /// The backward's pre-pass on the mma paths (docs/RELIABILITY.md): flags[b, h, m] = 1 where row (b, m, h) of a 16-bit
    /// [B, M, H, K] tensor holds a NaN or an infinity, else 0. The dK/dV kernels read the query rows' flags and the dQ kernels
    /// the key rows', a tile at a time, and zero the non-finite elements of a flagged tile before it is the operand of
    /// dK += dSᵀ Q or dQ += dS K. One pass over the tensor, memory-bound: a thread per element (coalesced 2-byte reads) in a
    /// grid-stride loop; a 16-bit element is non-finite when its exponent bits are all set (0x7C00 in fp16, 0x7F80 in bf16),
    /// and only such an element's thread works out its row and writes its flag, over flags zeroed first.
    /// </summary>
    internal static class NonFiniteRows
    {
        /// <summary>The exponent bits of a 16-bit element type (fp16 or bf16).</summary>
        public static ushort ExponentBits<T>()
            where T : unmanaged =>
            typeof(T) == typeof(BFloat16) ? (ushort)0x7F80
            : typeof(T) == typeof(ILGPU.Half) || typeof(T) == typeof(System.Half) ? (ushort)0x7C00
            : throw new NotSupportedException($"row flags are for 16-bit element types; {typeof(T).Name} is not one.");

        /// <summary>
        /// Writes the flags of <paramref name="rows"/> ([batch, tokens, heads, headDim]) into <paramref name="flags"/>
        /// ([batch, heads, tokens] or longer), on the accelerator's default stream.
        /// </summary>
        public static void Mark<T>(Accelerator accelerator, ArrayView<T> rows, ArrayView<int> flags, int batch, int tokens, int heads, int headDim)
            where T : unmanaged
        {
            long count = (long)batch * tokens * heads * headDim;
            var flagged = flags.SubView(0, (long)batch * heads * tokens);
            flagged.MemSetToZero();
            if (count == 0)
                return;
            var kernel = KernelCache.GetOrAdd(
                accelerator,
                typeof(NonFiniteRows),
                static (acc, _) => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<int>, RowShape>(MarkKernel));
            int threads = (int)Math.Min(count, 1L << 22);
            kernel(threads, rows.Cast<ushort>().SubView(0, count), flagged, new RowShape(tokens, heads, headDim, ExponentBits<T>(), threads));
        }

        /// <summary>The tensor's shape, the exponent bits, and the grid's stride.</summary>
        internal readonly record struct RowShape(int Tokens, int Heads, int HeadDim, ushort Exponent, int Stride);

        private static void MarkKernel(Index1D index, ArrayView<ushort> rows, ArrayView<int> flags, RowShape shape)
        {
            for (long e = index; e < rows.Length; e += shape.Stride)
            {
                if ((rows[e] & shape.Exponent) != shape.Exponent)
                    continue;
                long row = e / shape.HeadDim;
                long token = row / shape.Heads;
                long h = row - token * shape.Heads;
                long b = token / shape.Tokens;
                long m = token - b * shape.Tokens;
                flags[(b * shape.Heads + h) * shape.Tokens + m] = 1;
            }
        }
    }
}
