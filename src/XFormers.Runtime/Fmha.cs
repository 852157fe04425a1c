using System;
using System.Collections.Generic;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>
    /// Memory-efficient attention, xFormers' <c>xformers.ops.fmha</c> for .NET. Inputs are BMHK
    /// ([batch, tokens, heads, head dim]) or BMGHK ([batch, tokens, groups, heads, head dim]) for grouped-query
    /// attention; the output has the query's shape. softmax(scale · Q Kᵀ + bias) V is computed without ever
    /// materializing the Mq × Mkv matrix, by a variant found in <see cref="AttentionRegistry"/> (or the one given).
    /// Every argument is checked before any kernel runs.
    /// </summary>
    public static partial class Fmha
    {
        /// <summary>
        /// softmax(scale · Q Kᵀ + attnBias) V. <paramref name="scale"/> defaults to 1/√K. Element types: float,
        /// <see cref="System.Half"/> (or ILGPU.Half) and <see cref="BFloat16"/>. With <paramref name="p"/> &gt; 0, attention
        /// dropout: each probability is dropped with probability p and the kept ones scaled by 1 / (1 − p), the mask drawn
        /// from Philox under <paramref name="seed"/> (the same seed gives the same bits on the CPU and every GPU); it needs a
        /// variant declared with <c>Dropout = true</c>.
        /// </summary>
        public static Tensor<T> MemoryEfficientAttention<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias = null, float? scale = null,
            double p = 0.0, ulong? seed = null)
            where T : unmanaged
        {
            var dropout = AttentionDropout.Create(p, seed);
            if (attnBias is KvCacheMask kvCache)
            {
                if (dropout.IsRequested)
                    throw new ArgumentException($"p = {p}: attention dropout is for training; {attnBias} (KV-cache decoding) runs without it: pass p = 0.", nameof(p));
                return KvCacheAttention(query, key, value, kvCache, scale, keepLse: false).Output;
            }
            if (!dropout.IsRequested && TrySplitKvDecode(query, key, value, attnBias, scale) is { } decoded)
                return decoded;
            if (IsSystemHalf<T>())
                return SystemHalfAttention(query, key, value, attnBias, scale, dropout);
            var problem = AttentionProblem.Create(query, key, value, attnBias, scale);
            var variant = Resolve<T>(problem, query.Context, null, needBackward: false, dropout);
            var output = Tensor<T>.Empty(query.Context, problem.QueryShape);
            try
            {
                // The log-sum-exp goes to the context's scratch: nothing to free, nothing to wait for.
                lock (query.Context.LaunchLock)
                    RunForward(variant, problem, query, key, value, output.View, query.Context.Scratch(LseSlot, (long)problem.Batch * problem.Hq * problem.Mq), dropout);
            }
            catch
            {
                output.Dispose();
                throw;
            }
            output.MarkWritten();
            return output;
        }

        private const int LseSlot = 0;
        private const int DeltaSlot = 1;

        /// <summary>
        /// The forward pass keeping what the backward needs: the output and the per-row log-sum-exp
        /// [B, Hq, Mq] (float; -inf for a row that sees no key). xFormers' <c>memory_efficient_attention_forward_requires_grad</c>.
        /// With <paramref name="p"/> &gt; 0, attention dropout under <paramref name="seed"/> (see
        /// <see cref="MemoryEfficientAttention{T}(Tensor{T}, Tensor{T}, Tensor{T}, AttentionBias?, float?, double, ulong?)"/>); the
        /// log-sum-exp is that of the scores before dropout, and p and the seed are recorded with it: the backward must be
        /// given the same.
        /// </summary>
        public static AttentionOutput<T> MemoryEfficientAttentionForward<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias = null, float? scale = null,
            AttentionKernel? kernel = null, double p = 0.0, ulong? seed = null)
            where T : unmanaged
        {
            var dropout = AttentionDropout.Create(p, seed);
            if (IsSystemHalf<T>())
                return SystemHalfForward(query, key, value, attnBias, scale, kernel, dropout);
            var problem = AttentionProblem.Create(query, key, value, attnBias, scale);
            var variant = Resolve<T>(problem, query.Context, kernel, needBackward: false, dropout);
            var output = Tensor<T>.Empty(query.Context, problem.QueryShape);
            var lse = Tensor<float>.Empty(query.Context, problem.LseShape);
            try
            {
                RunForward(variant, problem, query, key, value, output.View, lse.View, dropout);
            }
            catch
            {
                output.Dispose();
                lse.Dispose();
                throw;
            }
            Record(problem, output, lse, dropout);
            return new AttentionOutput<T>(output, lse);
        }

        /// <summary>
        /// The forward pass into preallocated <paramref name="output"/> (query's shape) and <paramref name="lse"/> [B, Hq, Mq];
        /// <paramref name="p"/> and <paramref name="seed"/> as for the other overload.
        /// </summary>
        public static void MemoryEfficientAttentionForward<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, Tensor<T> output, Tensor<float> lse,
            AttentionBias? attnBias = null, float? scale = null, AttentionKernel? kernel = null, double p = 0.0, ulong? seed = null)
            where T : unmanaged
        {
            var dropout = AttentionDropout.Create(p, seed);
            if (IsSystemHalf<T>())
            {
                MemoryEfficientAttentionForward(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), AsIlgpu(output), lse, AsIlgpu(attnBias), scale, kernel, p, seed);
                return;
            }
            var problem = AttentionProblem.Create(query, key, value, attnBias, scale);
            problem.CheckTensor(output, problem.QueryShape, nameof(output));
            problem.CheckTensor(lse, problem.LseShape, nameof(lse));
            AttentionProblem.CheckDisjoint(new (string, IContiguousArrayView)[] { (nameof(output), output.View), (nameof(lse), lse.View) }, problem.Inputs);
            var variant = Resolve<T>(problem, query.Context, kernel, needBackward: false, dropout);
            RunForward(variant, problem, query, key, value, output.View, lse.View, dropout);
            Record(problem, output, lse, dropout);
        }

        /// <summary>
        /// The backward pass: dQ, dK, dV (and dBias when the tensor bias requires a gradient) from the output
        /// gradient and the forward's output and log-sum-exp. xFormers' <c>memory_efficient_attention_backward</c>.
        /// <paramref name="p"/> and <paramref name="seed"/> must be the forward's (the dropout mask is regenerated from them);
        /// a backward given others than the forward recorded is refused.
        /// </summary>
        public static AttentionGradients<T> MemoryEfficientAttentionBackward<T>(
            Tensor<T> gradOutput, AttentionOutput<T> forward, Tensor<T> query, Tensor<T> key, Tensor<T> value,
            AttentionBias? attnBias = null, float? scale = null, AttentionKernel? kernel = null, double p = 0.0, ulong? seed = null)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(forward);
            var dropout = AttentionDropout.Create(p, seed);
            if (IsSystemHalf<T>())
                return SystemHalfBackward(gradOutput, forward, query, key, value, attnBias, scale, kernel, p, seed);
            var problem = AttentionProblem.Create(query, key, value, attnBias, scale);
            CheckBackwardInputs(problem, gradOutput, forward.Output, forward.Lse, nameof(forward), nameof(forward), dropout);
            var variant = Resolve<T>(problem, query.Context, kernel, needBackward: true, dropout);
            var context = query.Context;
            var dq = Tensor<T>.Empty(context, problem.QueryShape);
            var dk = Tensor<T>.Empty(context, problem.KeyShape);
            var dv = Tensor<T>.Empty(context, problem.KeyShape);
            var dbias = problem.NeedsBiasGradient ? Tensor<T>.Empty(context, problem.Batch, problem.Hq, problem.Mq, problem.Mkv) : null;
            try
            {
                RunBackward(variant, problem, gradOutput, forward.Output, forward.Lse, query, key, value, dq, dk, dv, dbias, dropout);
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

        /// <summary>
        /// The backward pass into preallocated gradients (dQ like query, dK and dV like key, dBias
        /// [B, Hq, Mq, Mkv] when the bias requires a gradient, else null); <paramref name="p"/> and <paramref name="seed"/>
        /// must be the forward's.
        /// </summary>
        public static void MemoryEfficientAttentionBackward<T>(
            Tensor<T> gradOutput, Tensor<T> output, Tensor<float> lse, Tensor<T> query, Tensor<T> key, Tensor<T> value,
            Tensor<T> gradQuery, Tensor<T> gradKey, Tensor<T> gradValue, Tensor<T>? gradBias = null,
            AttentionBias? attnBias = null, float? scale = null, AttentionKernel? kernel = null, double p = 0.0, ulong? seed = null)
            where T : unmanaged
        {
            var dropout = AttentionDropout.Create(p, seed);
            if (IsSystemHalf<T>())
            {
                MemoryEfficientAttentionBackward(
                    AsIlgpu(gradOutput), AsIlgpu(output), lse, AsIlgpu(query), AsIlgpu(key), AsIlgpu(value),
                    AsIlgpu(gradQuery), AsIlgpu(gradKey), AsIlgpu(gradValue), gradBias is null ? null : AsIlgpu(gradBias), AsIlgpu(attnBias), scale, kernel, p, seed);
                return;
            }
            var problem = AttentionProblem.Create(query, key, value, attnBias, scale);
            CheckBackwardInputs(problem, gradOutput, output, lse, nameof(output), nameof(lse), dropout);
            problem.CheckTensor(gradQuery, problem.QueryShape, nameof(gradQuery));
            problem.CheckTensor(gradKey, problem.KeyShape, nameof(gradKey));
            problem.CheckTensor(gradValue, problem.KeyShape, nameof(gradValue));
            var outputs = new List<(string, IContiguousArrayView)> { (nameof(gradQuery), gradQuery.View), (nameof(gradKey), gradKey.View), (nameof(gradValue), gradValue.View) };
            if (problem.NeedsBiasGradient)
            {
                problem.CheckTensor(gradBias!, new[] { problem.Batch, problem.Hq, problem.Mq, problem.Mkv }, nameof(gradBias));
                outputs.Add((nameof(gradBias), gradBias!.View));
            }
            else if (gradBias is not null)
            {
                throw new ArgumentException("gradBias was given but attnBias has no tensor bias that requires a gradient.", nameof(gradBias));
            }
            AttentionProblem.CheckDisjoint(
                outputs.ToArray(),
                problem.Inputs.Concat(new (string, IContiguousArrayView)[] { (nameof(gradOutput), gradOutput.View), (nameof(output), output.View), (nameof(lse), lse.View) }).ToArray());
            var variant = Resolve<T>(problem, query.Context, kernel, needBackward: true, dropout);
            RunBackward(variant, problem, gradOutput, output, lse, query, key, value, gradQuery, gradKey, gradValue, gradBias, dropout);
        }

        /// <summary>The variant <see cref="Fmha"/> would run for these inputs (for inspection), or an exception saying why none fits.</summary>
        public static AttentionKernel SelectKernel<T>(
            Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias = null, bool needBackward = false)
            where T : unmanaged
        {
            if (IsSystemHalf<T>())
                return SelectKernel(AsIlgpu(query), AsIlgpu(key), AsIlgpu(value), AsIlgpu(attnBias), needBackward);
            var problem = AttentionProblem.Create(query, key, value, attnBias, null);
            return Resolve<T>(problem, query.Context, null, needBackward, default);
        }

        private static void CheckBackwardInputs<T>(
            AttentionProblem problem, Tensor<T> gradOutput, Tensor<T> output, Tensor<float> lse, string outputName, string lseName, AttentionDropout dropout)
            where T : unmanaged
        {
            problem.CheckTensor(gradOutput, problem.QueryShape, nameof(gradOutput));
            problem.CheckTensor(output, problem.QueryShape, outputName);
            problem.CheckTensor(lse, problem.LseShape, lseName);
            CheckSameForward(problem, output, lse, outputName, lseName, dropout);
        }

        /// <summary>
        /// Marks what a forward wrote, and records on the log-sum-exp's storage which inputs, at which versions, it came from,
        /// and its dropout.
        /// </summary>
        private static void Record<T>(AttentionProblem p, Tensor<T> output, Tensor<float> lse, AttentionDropout dropout)
            where T : unmanaged
        {
            output.MarkWritten();
            lse.MarkWritten();
            lse.RecordForward(new ForwardRecord(p.QueryStamp, p.KeyStamp, p.ValueStamp, p.BiasStamp, output.Stamp(), lse.Stamp(), dropout));
        }

        /// <summary>
        /// When <paramref name="lse"/> is, unchanged, the log-sum-exp of a forward this library ran: that forward must have read
        /// the same query, key, value (and bias tensor), unchanged since, written <paramref name="output"/>, unchanged since,
        /// and dropped scores with the p and seed of <paramref name="dropout"/> (the backward regenerates its mask from them).
        /// </summary>
        private static void CheckSameForward<T>(AttentionProblem p, Tensor<T> output, Tensor<float> lse, string outputName, string lseName, AttentionDropout dropout)
            where T : unmanaged
        {
            if (lse.LastForward is not { } record || !record.Lse.Equals(lse.Stamp()))
                return;
            if (record.Dropout != dropout)
            {
                string name = record.Dropout.P != dropout.P ? "p" : "seed";
                throw new ArgumentException(
                    $"{name}: the forward ran with {record.Dropout}, this backward was given {dropout}; pass the forward's p and seed " +
                    "(the backward regenerates the dropout mask from them).",
                    name);
            }
            CheckStamp(record.Query, p.QueryStamp, "query", lseName);
            CheckStamp(record.Key, p.KeyStamp, "key", lseName);
            CheckStamp(record.Value, p.ValueStamp, "value", lseName);
            if (record.Bias.HasValue != p.BiasStamp.HasValue)
                throw new ArgumentException($"{lseName}: the forward it comes from ran {(record.Bias.HasValue ? "with" : "without")} a bias tensor, attnBias has {(p.BiasStamp.HasValue ? "one" : "none")}; run the forward again with this attnBias.", lseName);
            if (record.Bias is { } before && p.BiasStamp is { } after)
                CheckStamp(before, after, "attnBias", lseName);
            var given = output.Stamp();
            if (!record.Output.SameRegion(given))
                throw new ArgumentException($"{outputName}: the forward's log-sum-exp was written with another output tensor than the one given; pass the output of the same forward.", outputName);
            if (record.Output.Version != given.Version)
                throw new ArgumentException($"{outputName}: the forward's output was written after the forward (version {record.Output.Version}, now {given.Version}); run the forward again before the backward.", outputName);
        }

        private static void CheckStamp(TensorStamp recorded, TensorStamp given, string what, string paramName)
        {
            if (!recorded.SameRegion(given))
                throw new ArgumentException($"{paramName}: the forward it comes from read another {what} tensor than the one given; run the forward again on these inputs.", paramName);
            if (recorded.Version != given.Version)
                throw new ArgumentException($"{paramName}: {what} was written after the forward it comes from (version {recorded.Version}, now {given.Version}); run the forward again before the backward.", paramName);
        }

        private static AttentionKernel<T> Resolve<T>(AttentionProblem p, XFormersContext context, AttentionKernel? requested, bool needBackward, AttentionDropout dropout)
            where T : unmanaged
        {
            var dtype = ElementType.Of<T>();
            if (requested is not null)
            {
                var v = requested.Variant;
                if (dropout.IsRequested && !v.Dropout)
                    throw new ArgumentException(
                        $"p = {dropout.P}: kernel {v.Name} was declared without dropout. Declare a variant with it: " +
                        $"{DeclarationFor(v.Mask, v.Bias, v.HeadDim, v.DType, dropout: true)} (or pass p = 0).",
                        "p");
                string? mismatch =
                    v.DType != dtype ? $"it takes {v.DType} tensors, the inputs are {dtype}" :
                    v.Mask != p.Mask ? $"its mask is {v.Mask}, attnBias asks for {p.Mask}" :
                    v.Bias != p.Bias ? $"its bias is {v.Bias}, attnBias asks for {p.Bias}" :
                    v.HeadDim != p.HeadDim ? $"its head dim is {v.HeadDim}, the inputs have {p.HeadDim}" :
                    !AttentionRegistry.GroupingFits(v, p.Hq, p.Hkv) ? $"it is declared for Heads = {v.Heads}, KvHeads = {v.KvHeads}; the inputs have {p.Hq} query and {p.Hkv} key/value heads" :
                    needBackward && !v.Backward ? "it was declared with Backward = false" :
                    needBackward && p.NeedsBiasGradient && !v.BiasGradient ? "the bias requires a gradient but the variant has BiasGradient = false" :
                    null;
                if (mismatch is not null)
                    throw new ArgumentException($"kernel {v.Name} cannot run these inputs: {mismatch}.", "kernel");
                // The mods' arguments are bound and their tables alive, on this context, of the right rank.
                _ = requested.ModArguments(context);
                return (AttentionKernel<T>)requested;
            }

            var found = AttentionRegistry.Find(p.Mask, p.Bias, dtype, p.HeadDim, p.Hq, p.Hkv, needBackward, needBackward && p.NeedsBiasGradient, dropout.IsRequested);
            if (found is null)
            {
                var dims = AttentionRegistry.HeadDimsFor(p.Mask, p.Bias, dtype, dropout.IsRequested);
                string registered = $"Head dims registered for this mask, bias and dtype{(dropout.IsRequested ? " with dropout" : "")}: {(dims.Count == 0 ? "none" : string.Join(", ", dims))}.";
                string Declaration(int headDim) => DeclarationFor(p.Mask, p.Bias, headDim, dtype, dropout.IsRequested);
                if (NearestDeclarableHeadDim(p.HeadDim) is not int nearest)
                    throw new ArgumentException(
                        $"query: head dim {p.HeadDim} is more than any variant takes: a declaration takes a multiple of 8 from 8 to {MaxHeadDim}. {registered}",
                        "query");
                if (nearest != p.HeadDim)
                    throw new ArgumentException(
                        $"query: no variant can take head dim {p.HeadDim}: a declaration takes a multiple of 8 from 8 to {MaxHeadDim}. The nearest declarable " +
                        $"head dim is {nearest}: declare {Declaration(nearest)}, zero-pad the last dim of query, key and value to {nearest} " +
                        $"(the padding adds nothing to the scores; pass scale = 1/√{p.HeadDim}, the default for {p.HeadDim}) and drop the output's last " +
                        $"{nearest - p.HeadDim} columns. {registered}",
                        "query");
                throw new ArgumentException(
                    $"query: no registered {dtype} variant for mask {p.Mask}, bias {p.Bias}, head dim {p.HeadDim}, " +
                    $"{p.Hq} query / {p.Hkv} key-value heads{(needBackward ? ", with backward" : "")}{(dropout.IsRequested ? ", with dropout" : "")}. {registered} " +
                    $"Declare one: {Declaration(p.HeadDim)}.",
                    "query");
            }
            if (!found.CanRunOn(context))
                throw new ArgumentException($"query: variant {found.Variant.Name} needs more threads or shared memory per group than {context.Description} has.", "query");
            return (AttentionKernel<T>)found;
        }

        /// <summary>The declaration a user would write for a variant: <c>[Attention(Mask = …, Bias = …, HeadDim = …, DType = …)]</c>.</summary>
        private static string DeclarationFor(MaskKind mask, BiasKind bias, int headDim, DType dtype, bool dropout) =>
            $"[Attention(Mask = MaskKind.{mask}, Bias = BiasKind.{bias}, HeadDim = {headDim}, DType = DType.{dtype}{(dropout ? ", Dropout = true" : "")})]";

        /// <summary>The largest head dim a declaration takes (<c>[Attention(HeadDim = …)]</c>: a multiple of 8 from 8 to 256).</summary>
        internal const int MaxHeadDim = 256;

        /// <summary>
        /// The smallest head dim a declaration takes that is at least <paramref name="headDim"/> (zero padding up to it leaves
        /// the scores unchanged), or null above <see cref="MaxHeadDim"/>.
        /// </summary>
        internal static int? NearestDeclarableHeadDim(int headDim) =>
            headDim > MaxHeadDim ? null : Math.Max(8, (headDim + 7) / 8 * 8);

        internal static AttentionArgs<T> Arguments<T>(AttentionProblem p, Tensor<T> query, Tensor<T> key, Tensor<T> value)
            where T : unmanaged
        {
            var accelerator = query.Context.Accelerator;
            var args = new AttentionArgs<T>
            {
                Batch = p.Batch,
                Mq = p.Mq,
                Mkv = p.Mkv,
                Hq = p.Hq,
                Hkv = p.Hkv,
                GroupSize = p.GroupSize,
                Scale = p.Scale,
                Q = query.View,
                K = key.View,
                V = value.View,
                Window = p.AttnBias?.Window ?? 0,
            };
            if (p.AttnBias?.Segments is { } segments)
            {
                var onDevice = segments.OnDevice(accelerator);
                args.QSegment = onDevice.QSegment.View;
                args.KvSegment = onDevice.KvSegment.View;
                args.QStart = onDevice.QStart.View;
                args.KvStart = onDevice.KvStart.View;
            }
            if (p.Bias == BiasKind.Tensor)
            {
                args.Bias = ((Tensor<T>)p.AttnBias!.BiasTensor!).View;
                args.BiasStrideB = p.BiasStrideB;
                args.BiasStrideH = p.BiasStrideH;
                args.BiasStrideM = p.BiasStrideM;
                args.BiasStrideN = p.BiasStrideN;
            }
            else if (p.Bias == BiasKind.Alibi)
            {
                args.AlibiSlopes = p.AttnBias!.AlibiSlopesOn(accelerator)!.View;
            }
            return args;
        }

        private static void RunForward<T>(
            AttentionKernel<T> kernel, AttentionProblem p, Tensor<T> query, Tensor<T> key, Tensor<T> value, ArrayView<T> output, ArrayView<float> lse,
            AttentionDropout dropout)
            where T : unmanaged
        {
            if (p.IsEmpty)
                return;
            var args = Arguments(p, query, key, value);
            dropout.Apply(ref args);
            args.Mod = kernel.ModArguments(query.Context);
            args.O = output;
            args.Lse = lse;
            kernel.LaunchForward(query.Context.Accelerator, args);
        }

        private static void RunBackward<T>(
            AttentionKernel<T> kernel, AttentionProblem p, Tensor<T> gradOutput, Tensor<T> output, Tensor<float> lse,
            Tensor<T> query, Tensor<T> key, Tensor<T> value, Tensor<T> dq, Tensor<T> dk, Tensor<T> dv, Tensor<T>? dbias, AttentionDropout dropout)
            where T : unmanaged
        {
            var context = query.Context;
            dbias?.Clear();
            if (p.IsEmpty || p.Mkv == 0)
            {
                // Nothing attends to anything: every gradient is zero.
                dq.Clear();
                dk.Clear();
                dv.Clear();
                return;
            }
            var args = Arguments(p, query, key, value);
            dropout.Apply(ref args);
            args.Mod = kernel.ModArguments(context);
            args.O = output.View;
            args.Lse = lse.View;
            args.dO = gradOutput.View;
            args.dQ = dq.View;
            args.dK = dk.View;
            args.dV = dv.View;
            if (dbias is not null)
                args.dBias = dbias.View;
            // D = rowsum(dO ∘ O) lives in the context's scratch; launches are stream-ordered, so no wait.
            lock (context.LaunchLock)
            {
                args.Delta = context.Scratch(DeltaSlot, (long)p.Batch * p.Hq * p.Mq);
                kernel.LaunchBackward(context.Accelerator, args);
            }
            dq.MarkWritten();
            dk.MarkWritten();
            dv.MarkWritten();
        }
    }

    /// <summary>The forward's output and the per-row log-sum-exp the backward needs.</summary>
    public sealed class AttentionOutput<T> : IDisposable
        where T : unmanaged
    {
        public AttentionOutput(Tensor<T> output, Tensor<float> lse)
        {
            Output = output ?? throw new ArgumentNullException(nameof(output));
            Lse = lse ?? throw new ArgumentNullException(nameof(lse));
        }

        /// <summary>O, shaped like the query.</summary>
        public Tensor<T> Output { get; }

        /// <summary>Log-sum-exp of each row's scaled, biased scores [B, Hq, Mq]; -inf where a row sees no key.</summary>
        public Tensor<float> Lse { get; }

        public void Dispose()
        {
            Output.Dispose();
            Lse.Dispose();
        }
    }

    /// <summary>Gradients of the attention inputs.</summary>
    public sealed class AttentionGradients<T> : IDisposable
        where T : unmanaged
    {
        public AttentionGradients(Tensor<T> query, Tensor<T> key, Tensor<T> value, Tensor<T>? bias)
        {
            Query = query;
            Key = key;
            Value = value;
            Bias = bias;
        }

        /// <summary>dQ, shaped like the query.</summary>
        public Tensor<T> Query { get; }

        /// <summary>dK, shaped like the key.</summary>
        public Tensor<T> Key { get; }

        /// <summary>dV, shaped like the value.</summary>
        public Tensor<T> Value { get; }

        /// <summary>dBias [B, Hq, Mq, Mkv] when the tensor bias requires a gradient, else null.</summary>
        public Tensor<T>? Bias { get; }

        public void Dispose()
        {
            Query.Dispose();
            Key.Dispose();
            Value.Dispose();
            Bias?.Dispose();
        }
    }
}
