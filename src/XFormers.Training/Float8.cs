using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// Eight consecutive elements as they lie in memory: the unit of the trainer's wide loads and stores. ILGPU's PTX
    /// backend loads and stores a struct of like fields with vector instructions when it knows the address is aligned
    /// (<see cref="ArrayViewExtensions.AsAligned{T}(ArrayView{T}, int)"/>): fp16 and bf16 as two <c>ld.global.v4.b16</c>
    /// (16 bytes a lane), fp32 as two <c>ld.global.v4.f32</c> (32 bytes a lane).
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Pack8<T>
        where T : unmanaged
    {
        public T E0, E1, E2, E3, E4, E5, E6, E7;
    }

    /// <summary>
    /// Eight consecutive elements widened to fp32, loaded and stored as one <see cref="Pack8{T}"/>. ILGPU does not unroll
    /// a loop over the fields (it would index them through a jump table), so the kernels name the eight lanes one by one.
    /// </summary>
    internal struct Float8
    {
        /// <summary>Elements per vector.</summary>
        public const int Width = 8;

        public float E0, E1, E2, E3, E4, E5, E6, E7;

        /// <summary>Elements [8·<paramref name="vector"/>, 8·<paramref name="vector"/> + 8) of <paramref name="view"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Float8 Load<T, TConvert>(ArrayView<T> view, long vector)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            var p = Wide.Vectors(view)[vector];
            var c = default(TConvert);
            return new Float8
            {
                E0 = c.ToFloat(p.E0), E1 = c.ToFloat(p.E1), E2 = c.ToFloat(p.E2), E3 = c.ToFloat(p.E3),
                E4 = c.ToFloat(p.E4), E5 = c.ToFloat(p.E5), E6 = c.ToFloat(p.E6), E7 = c.ToFloat(p.E7),
            };
        }

        /// <summary>fp32 elements [8·<paramref name="vector"/>, 8·<paramref name="vector"/> + 8) (master weights, moments, residuals).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Float8 Load(ArrayView<float> view, long vector) => Load<float, FloatConvert>(view, vector);

        /// <summary>Stores the eight values, each rounded to <typeparamref name="T"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store<T, TConvert>(ArrayView<T> view, long vector)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            var c = default(TConvert);
            Wide.Vectors(view)[vector] = new Pack8<T>
            {
                E0 = c.FromFloat(E0), E1 = c.FromFloat(E1), E2 = c.FromFloat(E2), E3 = c.FromFloat(E3),
                E4 = c.FromFloat(E4), E5 = c.FromFloat(E5), E6 = c.FromFloat(E6), E7 = c.FromFloat(E7),
            };
        }

        /// <summary>Stores the eight values as fp32.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(ArrayView<float> view, long vector) => Store<float, FloatConvert>(view, vector);

        /// <summary>The sum of the eight, in pairs.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly float Sum() => ((E0 + E1) + (E2 + E3)) + ((E4 + E5) + (E6 + E7));

        /// <summary>The largest of the eight and its lane, by a strict running comparison from lane 0: ties go to the smaller lane.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly float Max(out int lane)
        {
            float max = E0;
            lane = 0;
            if (E1 > max) { max = E1; lane = 1; }
            if (E2 > max) { max = E2; lane = 2; }
            if (E3 > max) { max = E3; lane = 3; }
            if (E4 > max) { max = E4; lane = 4; }
            if (E5 > max) { max = E5; lane = 5; }
            if (E6 > max) { max = E6; lane = 6; }
            if (E7 > max) { max = E7; lane = 7; }
            return max;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Float8 operator +(in Float8 a, in Float8 b) => new()
        {
            E0 = a.E0 + b.E0, E1 = a.E1 + b.E1, E2 = a.E2 + b.E2, E3 = a.E3 + b.E3,
            E4 = a.E4 + b.E4, E5 = a.E5 + b.E5, E6 = a.E6 + b.E6, E7 = a.E7 + b.E7,
        };
    }

    /// <summary>Which views the wide (<see cref="Float8"/>) path may read and write.</summary>
    internal static class Wide
    {
        /// <summary>
        /// True when element 8k of the view is a <see cref="Pack8{T}"/> boundary for every k: the view starts at an element
        /// offset that is a multiple of 8 into its buffer (ILGPU's <c>Cast</c> on the host rounds the offset down otherwise)
        /// and at a 16-byte aligned address (device buffers are 256-byte aligned). Empty views qualify.
        /// </summary>
        public static bool IsAligned<T>(ArrayView<T> view)
            where T : unmanaged =>
            !view.IsValid || view.Length == 0
            || (IndexInBuffer(view) % Float8.Width == 0 && view.LoadEffectiveAddressAsPtr().ToInt64() % 16 == 0);

        /// <summary>The view as <see cref="Pack8{T}"/> vectors, 16-byte aligned (the caller checked <see cref="IsAligned{T}"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ArrayView<Pack8<T>> Vectors<T>(ArrayView<T> view)
            where T : unmanaged => view.Cast<Pack8<T>>().AsAligned(16);

        /// <summary>The view's element offset into its buffer (a constrained call: no boxing).</summary>
        private static long IndexInBuffer<TView>(TView view)
            where TView : IContiguousArrayView => view.Index;
    }
}
