using System;
using System.Collections.Generic;

namespace XFormers
{
    /// <summary>
    /// Strided inputs (<see cref="TensorView{T}"/>, e.g. <c>bhmk.Transpose(1, 2)</c> for PyTorch's <c>[B, H, M, K]</c>
    /// layout). The kernels read dense BMHK memory: a view that is not dense is copied into a temporary dense tensor
    /// on the accelerator first (one copy kernel per such input; freed before the call returns), a dense view is read
    /// in place. Results are dense BMHK tensors; <c>result.Transpose(1, 2)</c> reads them as BHMK without a copy.
    /// </summary>
    public static partial class Fmha
    {
        /// <summary>softmax(scale · Q Kᵀ + attnBias) V over strided views; see the remarks on <see cref="Fmha"/>'s view overloads.</summary>
        public static Tensor<T> MemoryEfficientAttention<T>(
            TensorView<T> query, TensorView<T> key, TensorView<T> value, AttentionBias? attnBias = null, float? scale = null,
            double p = 0.0, ulong? seed = null)
            where T : unmanaged
        {
            ThrowIfAnyNull(query, key, value);
            using var dense = new DenseInputs<T>(query, key, value);
            return MemoryEfficientAttention(dense[0], dense[1], dense[2], attnBias, scale, p, seed);
        }

        /// <summary>The forward pass keeping the log-sum-exp, over strided views (inputs not dense are copied first).</summary>
        public static AttentionOutput<T> MemoryEfficientAttentionForward<T>(
            TensorView<T> query, TensorView<T> key, TensorView<T> value, AttentionBias? attnBias = null, float? scale = null,
            AttentionKernel? kernel = null, double p = 0.0, ulong? seed = null)
            where T : unmanaged
        {
            ThrowIfAnyNull(query, key, value);
            using var dense = new DenseInputs<T>(query, key, value);
            return MemoryEfficientAttentionForward(dense[0], dense[1], dense[2], attnBias, scale, kernel, p, seed);
        }

        /// <summary>The backward pass over strided views (inputs not dense are copied first); the gradients are dense BMHK.</summary>
        public static AttentionGradients<T> MemoryEfficientAttentionBackward<T>(
            TensorView<T> gradOutput, AttentionOutput<T> forward, TensorView<T> query, TensorView<T> key, TensorView<T> value,
            AttentionBias? attnBias = null, float? scale = null, AttentionKernel? kernel = null, double p = 0.0, ulong? seed = null)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(gradOutput);
            ThrowIfAnyNull(query, key, value);
            using var dense = new DenseInputs<T>(gradOutput, query, key, value);
            return MemoryEfficientAttentionBackward(dense[0], forward, dense[1], dense[2], dense[3], attnBias, scale, kernel, p, seed);
        }

        private static void ThrowIfAnyNull<T>(TensorView<T> query, TensorView<T> key, TensorView<T> value)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(query);
            ArgumentNullException.ThrowIfNull(key);
            ArgumentNullException.ThrowIfNull(value);
        }

        /// <summary>Views as dense tensors: aliases where they are dense, copies (freed on dispose) where not.</summary>
        private sealed class DenseInputs<T> : IDisposable
            where T : unmanaged
        {
            private readonly List<Tensor<T>> tensors = new();
            private readonly List<Tensor<T>> copies = new();

            public DenseInputs(params TensorView<T>[] views)
            {
                try
                {
                    for (int i = 0; i < views.Length; i++)
                    {
                        var tensor = views[i].AsDense(out bool copied);
                        tensors.Add(tensor);
                        if (copied)
                            copies.Add(tensor);
                    }
                }
                catch
                {
                    Dispose();
                    throw;
                }
            }

            public Tensor<T> this[int index] => tensors[index];

            public void Dispose()
            {
                // The launches that read the copies are queued, not finished: wait before freeing them.
                if (copies.Count > 0)
                    copies[0].Context.Synchronize();
                foreach (var copy in copies)
                    copy.Dispose();
            }
        }
    }
}
