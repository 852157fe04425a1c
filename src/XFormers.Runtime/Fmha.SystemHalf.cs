using System;
using Half = ILGPU.Half;

namespace XFormers
{
    /// <summary>
    /// <see cref="System.Half"/> inputs. System.Half and ILGPU.Half are the same 16 bits, and the kernels are declared
    /// over ILGPU.Half: a System.Half call allocates its results as System.Half tensors and runs the ILGPU.Half path on
    /// aliases of the same storage (no copy, no conversion).
    /// </summary>
    public static partial class Fmha
    {
        private static bool IsSystemHalf<T>() => typeof(T) == typeof(System.Half);

        private static Tensor<Half> AsIlgpu<T>(Tensor<T> tensor)
            where T : unmanaged =>
            tensor is null ? null! : tensor.Reinterpret<Half>();

        private static AttentionBias? AsIlgpu(AttentionBias? attnBias) => attnBias?.WithIlgpuHalfTensor();

        private static Tensor<T> SystemHalfAttention<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias, float? scale, AttentionDropout dropout)
            where T : unmanaged
        {
            var problem = AttentionProblem.Create(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), AsIlgpu(attnBias), scale);
            var variant = Resolve<Half>(problem, query.Context, null, needBackward: false, dropout);
            var output = Tensor<T>.Empty(query.Context, problem.QueryShape);
            try
            {
                lock (query.Context.LaunchLock)
                {
                    RunForward(variant, problem, AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), AsIlgpu(output).View,
                        query.Context.Scratch(LseSlot, (long)problem.Batch * problem.Hq * problem.Mq), dropout);
                }
            }
            catch
            {
                output.Dispose();
                throw;
            }
            return output;
        }

        private static AttentionOutput<T> SystemHalfForward<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias, float? scale, AttentionKernel? kernel, AttentionDropout dropout)
            where T : unmanaged
        {
            var problem = AttentionProblem.Create(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), AsIlgpu(attnBias), scale);
            var output = Tensor<T>.Empty(query.Context, problem.QueryShape);
            var lse = Tensor<float>.Empty(query.Context, problem.LseShape);
            try
            {
                MemoryEfficientAttentionForward(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), AsIlgpu(output), lse, AsIlgpu(attnBias), scale, kernel, dropout.P, dropout.Seed);
            }
            catch
            {
                output.Dispose();
                lse.Dispose();
                throw;
            }
            return new AttentionOutput<T>(output, lse);
        }

        private static AttentionGradients<T> SystemHalfBackward<T>(
            Tensor<T> gradOutput, AttentionOutput<T> forward, Tensor<T> query, Tensor<T> key, Tensor<T> value,
            AttentionBias? attnBias, float? scale, AttentionKernel? kernel, double p, ulong? seed)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(forward);
            var problem = AttentionProblem.Create(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), AsIlgpu(attnBias), scale);
            var context = query.Context;
            var dq = Tensor<T>.Empty(context, problem.QueryShape);
            var dk = Tensor<T>.Empty(context, problem.KeyShape);
            var dv = Tensor<T>.Empty(context, problem.KeyShape);
            var dbias = problem.NeedsBiasGradient ? Tensor<T>.Empty(context, problem.Batch, problem.Hq, problem.Mq, problem.Mkv) : null;
            try
            {
                MemoryEfficientAttentionBackward(
                    AsIlgpu(gradOutput), AsIlgpu(forward.Output), forward.Lse, AsIlgpu(query), AsIlgpu(key), AsIlgpu(value),
                    AsIlgpu(dq), AsIlgpu(dk), AsIlgpu(dv), dbias is null ? null : AsIlgpu(dbias), AsIlgpu(attnBias), scale, kernel, p, seed);
            }
            catch
            {
                dq.Dispose();
                dk.Dispose();
                dv.Dispose();
                dbias?.Dispose();
                throw;
            }
            return new AttentionGradients<T>(dq, dk, dv, dbias);
        }
    }
}
