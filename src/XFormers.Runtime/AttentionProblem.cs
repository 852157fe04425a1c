using System;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;

namespace XFormers
{
    /// <summary>
    /// The validated shape of one attention call, in the kernels' 4-D terms: Q [B, Mq, Hq, K], K/V
    /// [B, Mkv, Hkv, K]. Built before any kernel runs; every mismatch throws an <see cref="ArgumentException"/>
    /// naming the argument and what was expected.
    /// </summary>
    internal sealed class AttentionProblem
    {
        public int Batch { get; private init; }
        public int Mq { get; private init; }
        public int Mkv { get; private init; }
        public int Hq { get; private init; }
        public int Hkv { get; private init; }
        public int HeadDim { get; private init; }
        public float Scale { get; private init; }
        public int[] QueryShape { get; private init; } = Array.Empty<int>();
        public int[] KeyShape { get; private init; } = Array.Empty<int>();
        public MaskKind Mask { get; private init; }
        public BiasKind Bias { get; private init; }
        public AttentionBias? AttnBias { get; private init; }
        public long BiasStrideB { get; private init; }
        public long BiasStrideH { get; private init; }
        public long BiasStrideM { get; private init; }
        public long BiasStrideN { get; private init; }
        public bool NeedsBiasGradient { get; private init; }
        public XFormersContext Context { get; private init; } = null!;

        /// <summary>The storage, region and version of each input as validated, for the forward's record and the backward's check.</summary>
        public TensorStamp QueryStamp { get; private init; }
        public TensorStamp KeyStamp { get; private init; }
        public TensorStamp ValueStamp { get; private init; }
        public TensorStamp? BiasStamp { get; private init; }

        /// <summary>The inputs' views, with their argument names, for the aliasing check of what a call writes.</summary>
        public (string Name, IContiguousArrayView View)[] Inputs { get; private init; } = Array.Empty<(string, IContiguousArrayView)>();

        public int GroupSize => Hq / Hkv;

        public int[] LseShape => new[] { Batch, Hq, Mq };

        public bool IsEmpty => Batch == 0 || Mq == 0 || Hq == 0;

        public static AttentionProblem Create<T>(Tensor<T> query, Tensor<T> key, Tensor<T> value, AttentionBias? attnBias, float? scale)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(query);
            ArgumentNullException.ThrowIfNull(key);
            ArgumentNullException.ThrowIfNull(value);
            query.ThrowIfDisposed(nameof(query));
            key.ThrowIfDisposed(nameof(key));
            value.ThrowIfDisposed(nameof(value));
            if (!ElementType.IsSupported<T>())
                throw new ArgumentException($"query has element type {typeof(T).FullName}; {ElementType.SupportedTypes}.", nameof(query));
            if (key.Context != query.Context)
                throw new ArgumentException("key lives on another context than query.", nameof(key));
            if (value.Context != query.Context)
                throw new ArgumentException("value lives on another context than query.", nameof(value));

            int rank = query.Rank;
            if (rank != 4 && rank != 5)
                throw new ArgumentException($"query is {query.ShapeString}; expected [B, M, H, K] (BMHK) or [B, M, G, H, K] (BMGHK).", nameof(query));
            if (key.Rank != rank)
                throw new ArgumentException($"key is {key.ShapeString}; expected rank {rank} like query {query.ShapeString}.", nameof(key));
            if (!value.Shape.SequenceEqual(key.Shape))
                throw new ArgumentException($"value is {value.ShapeString}; expected key's shape {key.ShapeString} (equal head dims for K and V).", nameof(value));

            int batch = query.Dim(0), mq = query.Dim(1), mkv = key.Dim(1), headDim = query.Dim(-1);
            if (key.Dim(0) != batch)
                throw new ArgumentException($"key is {key.ShapeString}; its batch {key.Dim(0)} differs from query's {batch}.", nameof(key));
            if (key.Dim(-1) != headDim)
                throw new ArgumentException($"key is {key.ShapeString}; its head dim {key.Dim(-1)} differs from query's {headDim}.", nameof(key));
            if (headDim == 0)
                throw new ArgumentException($"query is {query.ShapeString}; the head dim must be positive.", nameof(query));

            int hq, hkv;
            if (rank == 4)
            {
                hq = query.Dim(2);
                hkv = key.Dim(2);
                if (hkv == 0 && hq > 0 || hkv > 0 && hq % hkv != 0)
                    throw new ArgumentException($"key is {key.ShapeString}; its {hkv} heads must divide query's {hq} heads (grouped-query attention).", nameof(key));
            }
            else
            {
                int groups = query.Dim(2), heads = query.Dim(3);
                if (key.Dim(2) != groups)
                    throw new ArgumentException($"key is {key.ShapeString}; its {key.Dim(2)} groups differ from query's {groups} (BMGHK).", nameof(key));
                if (key.Dim(3) != 1 && key.Dim(3) != heads)
                    throw new ArgumentException($"key is {key.ShapeString}; in BMGHK its head dim 3 must be 1 (one KV head per group) or query's {heads}.", nameof(key));
                hq = groups * heads;
                hkv = groups * key.Dim(3);
            }
            if (hq == 0)
                hkv = Math.Max(hkv, 1);

            float resolvedScale = scale ?? (float)(1.0 / Math.Sqrt(headDim));
            if (!float.IsFinite(resolvedScale))
                throw new ArgumentException($"scale = {resolvedScale} is not finite.", nameof(scale));

            var mask = attnBias?.Mask ?? MaskKind.None;
            var biasKind = attnBias?.Bias ?? BiasKind.None;

            if (mask.IsLocal() && attnBias!.Window < 1)
                throw new ArgumentException($"attnBias: {attnBias} is a local mask with a window of {attnBias.Window}; a window holds at least one key.", nameof(attnBias));
            if (mask.IsBlockDiagonal() && attnBias!.Segments is null)
                throw new ArgumentException($"attnBias: {attnBias} runs only through Fmha.MemoryEfficientAttention and Fmha.MemoryEfficientAttentionPartial, without an additive bias.", nameof(attnBias));
            if (attnBias?.Segments is { } segments)
            {
                if (batch != 1)
                    throw new ArgumentException($"query is {query.ShapeString}; a block-diagonal mask packs sequences along dim 1 and needs batch 1.", nameof(query));
                if (segments.TotalQ != mq)
                    throw new ArgumentException($"attnBias: the query seqlens sum to {segments.TotalQ} tokens but query has {mq} (dim 1 of {query.ShapeString}).", nameof(attnBias));
                if (segments.TotalKv != mkv)
                    throw new ArgumentException($"attnBias: the key/value seqlens sum to {segments.TotalKv} tokens but key has {mkv} (dim 1 of {key.ShapeString}).", nameof(attnBias));
            }

            long strideB = 0, strideH = 0, strideM = 0, strideN = 0;
            bool needsBiasGradient = false;
            Tensor<T>? biasTensor = null;
            if (biasKind == BiasKind.Tensor)
            {
                if (attnBias!.BiasTensor is not Tensor<T> bias)
                    throw new ArgumentException($"attnBias: the bias tensor's element type must be query's ({typeof(T).Name}); got {attnBias.BiasTensor?.ElementType.Name ?? "null"}.", nameof(attnBias));
                bias.ThrowIfDisposed(nameof(attnBias));
                biasTensor = bias;
                if (bias.Context != query.Context)
                    throw new ArgumentException("attnBias: the bias tensor lives on another context than query.", nameof(attnBias));
                (strideB, strideH, strideM, strideN) = BiasStrides(bias, query, batch, hq, mq, mkv);
                needsBiasGradient = attnBias.BiasRequiresGrad;
                if (needsBiasGradient && (strideB == 0 && batch > 1 || strideH == 0 && hq > 1 || strideM == 0 && mq > 1 || strideN == 0 && mkv > 1))
                    throw new ArgumentException($"attnBias: a bias that requires a gradient must have the full shape [{batch}, {hq}, {mq}, {mkv}]; got {bias.ShapeString}.", nameof(attnBias));
            }
            else if (biasKind == BiasKind.Alibi)
            {
                int slopes = attnBias!.AlibiSlopes?.Count ?? 0;
                if (slopes != hq)
                    throw new ArgumentException($"attnBias: ALiBi has {slopes} slopes but query has {hq} heads.", nameof(attnBias));
            }

            return new AttentionProblem
            {
                Batch = batch,
                Mq = mq,
                Mkv = mkv,
                Hq = hq,
                Hkv = hkv,
                HeadDim = headDim,
                Scale = resolvedScale,
                QueryShape = query.Shape.ToArray(),
                KeyShape = key.Shape.ToArray(),
                Mask = mask,
                Bias = biasKind,
                AttnBias = attnBias,
                BiasStrideB = strideB,
                BiasStrideH = strideH,
                BiasStrideM = strideM,
                BiasStrideN = strideN,
                NeedsBiasGradient = needsBiasGradient,
                Context = query.Context,
                QueryStamp = query.Stamp(),
                KeyStamp = key.Stamp(),
                ValueStamp = value.Stamp(),
                BiasStamp = biasTensor?.Stamp(),
                Inputs = biasTensor is null
                    ? new (string, IContiguousArrayView)[] { (nameof(query), query.View), (nameof(key), key.View), (nameof(value), value.View) }
                    : new (string, IContiguousArrayView)[] { (nameof(query), query.View), (nameof(key), key.View), (nameof(value), value.View), (nameof(attnBias), biasTensor.View) },
            };
        }

        /// <summary>Element strides of a (possibly broadcast) bias, as [B, Hq, Mq, Mkv].</summary>
        private static (long B, long H, long M, long N) BiasStrides<T>(Tensor<T> bias, Tensor<T> query, int batch, int hq, int mq, int mkv)
            where T : unmanaged
        {
            int[] dims;
            if (bias.Rank == 4)
            {
                dims = bias.Shape.ToArray();
            }
            else if (bias.Rank == 5 && query.Rank == 5)
            {
                // [B, G, H, Mq, Mkv]: the two head dims flatten when both broadcast or neither does.
                int g = bias.Dim(1), h = bias.Dim(2);
                if ((g == 1) != (h == 1) && query.Dim(2) > 1 && query.Dim(3) > 1)
                    throw new ArgumentException($"attnBias: a 5-D bias {bias.ShapeString} must broadcast both or neither of G and H.", "attnBias");
                dims = new[] { bias.Dim(0), g * h, bias.Dim(3), bias.Dim(4) };
            }
            else
            {
                throw new ArgumentException($"attnBias: the bias tensor is {bias.ShapeString}; expected [B, Hq, Mq, Mkv] = [{batch}, {hq}, {mq}, {mkv}] (size-1 dims broadcast).", "attnBias");
            }

            int[] expected = { batch, hq, mq, mkv };
            for (int d = 0; d < 4; d++)
            {
                if (dims[d] != expected[d] && dims[d] != 1)
                    throw new ArgumentException($"attnBias: the bias tensor is {bias.ShapeString}; expected [B, Hq, Mq, Mkv] = [{batch}, {hq}, {mq}, {mkv}] (size-1 dims broadcast).", "attnBias");
            }
            long n = 1, m = dims[3], h2 = (long)dims[2] * dims[3], b = (long)dims[1] * dims[2] * dims[3];
            return (dims[0] == 1 ? 0 : b, dims[1] == 1 ? 0 : h2, dims[2] == 1 ? 0 : m, dims[3] == 1 ? 0 : n);
        }

        /// <summary>Another tensor of the call (an output, a gradient, the forward's results): alive, on the call's context, of the expected shape.</summary>
        public void CheckTensor<T>(Tensor<T> tensor, int[] expected, string paramName)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(tensor, paramName);
            tensor.ThrowIfDisposed(paramName);
            tensor.CheckContext(Context, paramName);
            if (!tensor.Shape.SequenceEqual(expected))
                throw new ArgumentException($"{paramName} is {tensor.ShapeString}; expected {Tensor<T>.FormatShape(expected)}.", paramName);
        }

        /// <summary>
        /// An <see cref="ArgumentException"/> naming the first of <paramref name="outputs"/> that shares storage with another
        /// output or with one of <paramref name="reads"/>: a kernel would overwrite what it reads, or one result another.
        /// </summary>
        public static void CheckDisjoint((string Name, IContiguousArrayView View)[] outputs, params (string Name, IContiguousArrayView View)[] reads)
        {
            for (int o = 0; o < outputs.Length; o++)
            {
                for (int other = 0; other < outputs.Length; other++)
                {
                    if (other != o && Overlaps(outputs[o].View, outputs[other].View))
                        throw new ArgumentException($"{outputs[o].Name} shares storage with {outputs[other].Name}; each result needs a tensor of its own.", outputs[o].Name);
                }
                foreach (var read in reads)
                {
                    if (Overlaps(outputs[o].View, read.View))
                        throw new ArgumentException($"{outputs[o].Name} shares storage with the input {read.Name}; write the result to a separate tensor.", outputs[o].Name);
                }
            }
        }

        private static bool Overlaps(IContiguousArrayView x, IContiguousArrayView y)
        {
            if (x.LengthInBytes == 0 || y.LengthInBytes == 0 || !ReferenceEquals(x.Buffer, y.Buffer))
                return false;
            long aStart = x.IndexInBytes, aEnd = aStart + x.LengthInBytes;
            long bStart = y.IndexInBytes, bEnd = bStart + y.LengthInBytes;
            return aStart < bEnd && bStart < aEnd;
        }
    }
}
