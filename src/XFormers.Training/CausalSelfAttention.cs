using System;
using System.Runtime.CompilerServices;
using ILGPU;
using XFormers.Dsl;

namespace XFormers.Training
{
    /// <summary>
    /// The attention of a GPT block between its two projections: the QKV product's rows [q | k | v] (each
    /// heads · headDim wide) are split into dense BMHK tensors [B, T, H, K] — the layout the attention kernels
    /// read — and the gradients are merged back. The forward goes through <see cref="Fmha"/> with a causal
    /// mask (xFormers' <c>LowerTriangularMask</c>) and the given variant, into preallocated tensors; neither
    /// direction allocates or waits for the device.
    /// </summary>
    internal static class CausalSelfAttention
    {
        private static readonly LowerTriangularMask Causal = new();

        public struct SplitArgs<T>
            where T : unmanaged
        {
            public ArrayView<T> Qkv;
            public ArrayView<T> Q;
            public ArrayView<T> K;
            public ArrayView<T> V;
            public int Channels;

            /// <summary>1: a thread moves 8 elements of each (<see cref="Pack8{T}"/>, 16 bytes in fp16); 0: one.</summary>
            public int Aligned;
        }

        public static void SplitKernel<T>(Index1D index, SplitArgs<T> a)
            where T : unmanaged
        {
            if (a.Aligned != 0)
                Move(index, a.Channels / Float8.Width, Wide.Vectors(a.Qkv), Wide.Vectors(a.Q), Wide.Vectors(a.K), Wide.Vectors(a.V), split: true);
            else
                Move(index, a.Channels, a.Qkv, a.Q, a.K, a.V, split: true);
        }

        public static void MergeKernel<T>(Index1D index, SplitArgs<T> a)
            where T : unmanaged
        {
            if (a.Aligned != 0)
                Move(index, a.Channels / Float8.Width, Wide.Vectors(a.Qkv), Wide.Vectors(a.Q), Wide.Vectors(a.K), Wide.Vectors(a.V), split: false);
            else
                Move(index, a.Channels, a.Qkv, a.Q, a.K, a.V, split: false);
        }

        /// <summary>Unit <paramref name="index"/> of q, k and v from (split) or into (merge) its row of qkv; units are elements or vectors.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Move<TUnit>(int index, int channels, ArrayView<TUnit> qkv, ArrayView<TUnit> q, ArrayView<TUnit> k, ArrayView<TUnit> v, bool split)
            where TUnit : unmanaged
        {
            int n = index / channels;
            long row = (long)n * 3 * channels + (index - n * channels);
            if (split)
            {
                q[index] = qkv[row];
                k[index] = qkv[row + channels];
                v[index] = qkv[row + 2 * channels];
            }
            else
            {
                qkv[row] = q[index];
                qkv[row + channels] = k[index];
                qkv[row + 2 * channels] = v[index];
            }
        }

        /// <summary>qkv [rows, 3·channels] → q, k, v [rows, channels] (= [B, T, H, K]).</summary>
        public static void Split<T>(DeviceLauncher launcher, int rows, int channels, ArrayView<T> qkv, ArrayView<T> q, ArrayView<T> k, ArrayView<T> v)
            where T : unmanaged
        {
            var args = Args(channels, qkv, q, k, v);
            launcher.Launch(SplitKernel, Units(rows, args), args);
        }

        /// <summary>dq, dk, dv [rows, channels] → dqkv [rows, 3·channels].</summary>
        public static void Merge<T>(DeviceLauncher launcher, int rows, int channels, ArrayView<T> dq, ArrayView<T> dk, ArrayView<T> dv, ArrayView<T> dqkv)
            where T : unmanaged
        {
            var args = Args(channels, dqkv, dq, dk, dv);
            launcher.Launch(MergeKernel, Units(rows, args), args);
        }

        private static SplitArgs<T> Args<T>(int channels, ArrayView<T> qkv, ArrayView<T> q, ArrayView<T> k, ArrayView<T> v)
            where T : unmanaged => new()
        {
            Qkv = qkv,
            Q = q,
            K = k,
            V = v,
            Channels = channels,
            Aligned = channels % Float8.Width == 0 && Wide.IsAligned(qkv) && Wide.IsAligned(q) && Wide.IsAligned(k) && Wide.IsAligned(v) ? 1 : 0,
        };

        private static long Units<T>(int rows, in SplitArgs<T> args)
            where T : unmanaged =>
            (long)rows * args.Channels / (args.Aligned != 0 ? Float8.Width : 1);

        /// <summary>The softmax scale 1/√K, computed as <see cref="Fmha"/> does.</summary>
        public static float Scale(int headDim) => (float)(1.0 / Math.Sqrt(headDim));

        /// <summary>Checks that a variant can serve this model's attention: causal, no bias, with backward.</summary>
        public static AttentionKernel<T> Resolve<T>(AttentionKernel? kernel, int headDim, int heads)
            where T : unmanaged
        {
            var dtype = ElementType.Of<T>();
            kernel ??= AttentionRegistry.Find(MaskKind.Causal, BiasKind.None, dtype, headDim, heads, heads, needBackward: true)
                ?? throw new ArgumentException(
                    $"no causal {dtype} attention variant with head dim {headDim} is registered; declare one: " +
                    $"[Attention(Mask = MaskKind.Causal, HeadDim = {headDim}, DType = DType.{dtype})].", nameof(kernel));
            var v = kernel.Variant;
            if (kernel is not AttentionKernel<T> typed)
                throw new ArgumentException($"kernel {v.Name} takes {v.DType}; the model computes in {dtype}.", nameof(kernel));
            if (v.Mask != MaskKind.Causal || v.Bias != BiasKind.None || v.HeadDim != headDim || !v.Backward || (v.Heads != 0 && v.Heads != heads))
                throw new ArgumentException(
                    $"kernel {v.Name} ({v.Summary}) cannot serve causal attention with head dim {headDim}, {heads} heads and a backward pass.", nameof(kernel));
            return typed;
        }

        /// <summary>O = softmax(scale·QKᵀ + causal) V and its log-sum-exp, into preallocated tensors.</summary>
        public static void Forward<T>(AttentionKernel<T> kernel, Tensor<T> q, Tensor<T> k, Tensor<T> v, Tensor<T> output, Tensor<float> lse)
            where T : unmanaged
        {
            Fmha.MemoryEfficientAttentionForward(q, k, v, output, lse, Causal, Scale(q.Dim(-1)), kernel);
            if (q.Context.IsCpu)
                q.Context.Synchronize();
        }

        /// <summary>dQ, dK, dV from dO with the forward's O and LSE.</summary>
        public static void Backward<T>(
            AttentionKernel<T> kernel, Tensor<T> dOutput, Tensor<T> output, Tensor<float> lse, Tensor<T> q, Tensor<T> k, Tensor<T> v,
            Tensor<T> dq, Tensor<T> dk, Tensor<T> dv)
            where T : unmanaged
        {
            Fmha.MemoryEfficientAttentionBackward(dOutput, output, lse, q, k, v, dq, dk, dv, null, Causal, Scale(q.Dim(-1)), kernel);
            if (q.Context.IsCpu)
                q.Context.Synchronize();
        }
    }
}
