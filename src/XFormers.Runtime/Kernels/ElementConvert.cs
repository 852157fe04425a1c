using System.Runtime.CompilerServices;
using ILGPU;
using Half = ILGPU.Half;

namespace XFormers.Kernels
{
    /// <summary>
    /// Widening to float and narrowing back for one element type, as a struct type parameter so a kernel
    /// written once is specialized per dtype at compile time (ILGPU inlines <c>default(TConvert).ToFloat(x)</c>).
    /// </summary>
    public interface IElementConvert<T>
        where T : unmanaged
    {
        float ToFloat(T value);

        T FromFloat(float value);
    }

    public struct FloatConvert : IElementConvert<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float ToFloat(float value) => value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float FromFloat(float value) => value;
    }

    /// <summary>
    /// fp16 with round-to-nearest-even narrowing on every backend, so the host loops and the GPU round identically
    /// (ILGPU.Half's host cast truncates: a resumed run would otherwise not be bit-identical). On CUDA that is one
    /// <c>cvt.rn.f16.f32</c>; elsewhere the rounding is done in integer arithmetic (<see cref="ElementMath.ToHalf"/>).
    /// </summary>
    public struct HalfConvert : IElementConvert<Half>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float ToFloat(Half value) => (float)value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Half FromFloat(float value) => ElementMath.ToHalf(value);
    }

    public struct BFloat16Convert : IElementConvert<BFloat16>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float ToFloat(BFloat16 value) => ElementMath.ToFloat(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public BFloat16 FromFloat(float value) => ElementMath.ToBFloat16(value);
    }
}
