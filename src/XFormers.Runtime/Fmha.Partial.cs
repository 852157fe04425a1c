using System;
using System.Collections.Generic;
using System.Linq;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>Attention over part of the keys, and the exact merge of such parts (xFormers' <c>memory_efficient_attention_partial</c>, <c>merge_attentions</c>).</summary>
    public static partial class Fmha
    {
        /// <summary>
        /// Attention of the queries over these keys only: O, and the log-sum-exp of each row [B, Hq, Mq] (float; −∞ for a
        /// row that sees no key here, whose O is 0). Parts computed over disjoint key subsets (split along the keys, or on
        /// several devices) combine exactly with <see cref="MergeAttentions{T}"/>. Takes every bias <see cref="Fmha"/> takes,
        /// the KV-cache masks included (then the LSE is [1, Hq, ΣqSeqlen]).
        /// </summary>
        public static AttentionOutput<T> MemoryEfficientAttentionPartial<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias = null, float? scale = null)
            where T : unmanaged
        {
            if (attnBias is not KvCacheMask mask)
                return MemoryEfficientAttentionForward(query, key, value, attnBias, scale);
            var (output, lse) = KvCacheAttention(query, key, value, mask, scale, keepLse: true);
            return new AttentionOutput<T>(output, lse!);
        }

        /// <summary>
        /// Combines attention computed over disjoint subsets of the keys into attention over their union, exactly:
        /// LSE = log Σ_c exp(lse_c) and O = Σ_c exp(lse_c − LSE) · O_c. A part a row does not see (lse_c = −∞) weighs
        /// nothing; a row no part sees gets O = 0 and LSE = −∞. <paramref name="outputs"/> are the parts' O, all of one shape
        /// [B, M, H, K] or [B, M, G, H, K]; <paramref name="lses"/> their log-sum-exps [B, Hq, M] (Hq = G·H), as
        /// <see cref="MemoryEfficientAttentionPartial{T}"/> returns them. Arithmetic is float; O is rounded once.
        /// </summary>
        public static AttentionOutput<T> MergeAttentions<T>(IReadOnlyList<Tensor<T>> outputs, IReadOnlyList<Tensor<float>> lses)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(outputs);
            ArgumentNullException.ThrowIfNull(lses);
            if (outputs.Count == 0)
                throw new ArgumentException("Need at least one partial output.", nameof(outputs));
            if (lses.Count != outputs.Count)
                throw new ArgumentException($"lses has {lses.Count} tensors; outputs has {outputs.Count} (one log-sum-exp per output).", nameof(lses));
            var first = outputs[0];
            ArgumentNullException.ThrowIfNull(first, "outputs[0]");
            first.ThrowIfDisposed("outputs[0]");
            if (!ElementType.IsSupported<T>())
                throw new ArgumentException($"outputs has element type {typeof(T).FullName}; {ElementType.SupportedTypes}.", nameof(outputs));
            if (first.Rank is not (4 or 5))
                throw new ArgumentException($"outputs[0] is {first.ShapeString}; expected [B, M, H, K] or [B, M, G, H, K].", nameof(outputs));
            int batch = first.Dim(0), rows = first.Dim(1), headDim = first.Dim(-1);
            int heads = first.Rank == 5 ? first.Dim(2) * first.Dim(3) : first.Dim(2);
            var lseShape = new[] { batch, heads, rows };
            for (int c = 0; c < outputs.Count; c++)
            {
                var o = outputs[c];
                ArgumentNullException.ThrowIfNull(o, $"outputs[{c}]");
                o.ThrowIfDisposed($"outputs[{c}]");
                o.CheckContext(first.Context, nameof(outputs));
                if (!o.Shape.SequenceEqual(first.Shape))
                    throw new ArgumentException($"outputs[{c}] is {o.ShapeString}; expected outputs[0]'s shape {first.ShapeString}.", nameof(outputs));
                var l = lses[c];
                ArgumentNullException.ThrowIfNull(l, $"lses[{c}]");
                l.ThrowIfDisposed($"lses[{c}]");
                l.CheckContext(first.Context, nameof(lses));
                if (!l.Shape.SequenceEqual(lseShape))
                    throw new ArgumentException($"lses[{c}] is {l.ShapeString}; expected [B, Hq, M] = {Tensor<float>.FormatShape(lseShape)} for outputs {first.ShapeString}.", nameof(lses));
            }

            var context = first.Context;
            var merged = Tensor<T>.Empty(context, first.Shape.ToArray());
            var lse = Tensor<float>.Empty(context, lseShape);
            try
            {
                if (IsSystemHalf<T>())
                    Merge(outputs.Select(o => AsIlgpu(o)).ToArray(), lses, AsIlgpu(merged), lse, batch, rows, heads, headDim);
                else
                    Merge(outputs, lses, merged, lse, batch, rows, heads, headDim);
            }
            catch
            {
                merged.Dispose();
                lse.Dispose();
                throw;
            }
            merged.MarkWritten();
            lse.MarkWritten();
            return new AttentionOutput<T>(merged, lse);
        }

        private static void Merge<T>(
            IReadOnlyList<Tensor<T>> outputs, IReadOnlyList<Tensor<float>> lses, Tensor<T> merged, Tensor<float> lse, int batch, int rows, int heads, int headDim)
            where T : unmanaged
        {
            if (lse.Length == 0)
                return;
            var context = merged.Context;
            using var acc = Tensor<float>.Empty(context, (int)Math.Max(1, merged.Length));
            using var rowSum = Tensor<float>.Empty(context, (int)lse.Length);
            try
            {
                var args = new MergeArgs<T>
                {
                    Batch = batch,
                    Rows = rows,
                    Heads = heads,
                    HeadDim = headDim,
                    SourceRows = rows,
                    First = 1,
                    Acc = acc.View,
                    RowMax = lse.View,
                    RowSum = rowSum.View,
                    Merged = merged.View,
                    MergedLse = lse.View,
                };
                for (int c = 0; c < outputs.Count; c++)
                {
                    args.Output = outputs[c].View;
                    args.Lse = lses[c].View;
                    AttentionMerge.Step(context.Accelerator, args);
                    args.First = 0;
                }
                AttentionMerge.Finish(context.Accelerator, args);
            }
            finally
            {
                context.Synchronize();
            }
        }
    }
}
