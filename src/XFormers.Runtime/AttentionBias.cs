using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;

namespace XFormers
{
    /// <summary>
    /// What is added to, or masked out of, the attention scores; mirrors xFormers' <c>attn_bias</c> module.
    /// Every bias is a mask part (<see cref="Mask"/>) and an additive part (<see cref="Bias"/>); combine them
    /// with <see cref="WithTensorBias{T}"/> and <see cref="WithAlibi"/>. Instances are immutable.
    /// </summary>
    public abstract class AttentionBias
    {
        private protected AttentionBias()
        {
        }

        /// <summary>The mask part.</summary>
        public abstract MaskKind Mask { get; }

        /// <summary>The additive part.</summary>
        public virtual BiasKind Bias => BiasKind.None;

        /// <summary>The segments of a block-diagonal mask, else null.</summary>
        public virtual BlockDiagonalMask? Segments => null;

        /// <summary>
        /// A local mask's window (<see cref="MaskKindExtensions.IsLocal"/>): each query sees at most this many keys, ending at
        /// its diagonal; 0 for the other masks.
        /// </summary>
        public virtual int Window => 0;

        /// <summary>The bias tensor of a tensor bias (a <see cref="Tensor{T}"/>; see <see cref="BiasTensorAs{T}"/>), else null.</summary>
        public virtual ITensor? BiasTensor => null;

        /// <summary>
        /// The bias tensor as a <see cref="Tensor{T}"/>; null when there is none, an <see cref="InvalidOperationException"/>
        /// when its element type is another.
        /// </summary>
        public Tensor<T>? BiasTensorAs<T>()
            where T : unmanaged => BiasTensor switch
            {
                null => null,
                Tensor<T> tensor => tensor,
                var other => throw new InvalidOperationException($"the bias tensor holds {other.ElementType.Name}, not {typeof(T).Name}."),
            };

        /// <summary>This bias with a System.Half bias tensor read as ILGPU.Half (same storage; the kernels take ILGPU's type).</summary>
        internal virtual AttentionBias WithIlgpuHalfTensor() => this;

        /// <summary>Whether the backward should write the tensor bias's gradient.</summary>
        public virtual bool BiasRequiresGrad => false;

        /// <summary>Per-head ALiBi slopes of an ALiBi bias, else null.</summary>
        public virtual IReadOnlyList<float>? AlibiSlopes => null;

        /// <summary>The ALiBi slopes on an accelerator (uploaded once per accelerator), else null.</summary>
        internal virtual MemoryBuffer1D<float, Stride1D.Dense>? AlibiSlopesOn(Accelerator accelerator) => null;

        /// <summary>This mask plus an additive tensor [B, Hq, Mq, Mkv] (dimensions of size 1 broadcast).</summary>
        public AttentionBias WithTensorBias<T>(Tensor<T> bias, bool requiresGrad = false)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(bias);
            RequireMaskOnly(nameof(WithTensorBias));
            return new CombinedBias(this, new TensorBias<T>(bias, requiresGrad));
        }

        /// <summary>This mask plus ALiBi with the given per-head slopes (see <see cref="AlibiBias.DefaultSlopes"/>).</summary>
        public AttentionBias WithAlibi(IReadOnlyList<float> slopes)
        {
            RequireMaskOnly(nameof(WithAlibi));
            return new CombinedBias(this, new AlibiBias(slopes));
        }

        public override string ToString() => Bias == BiasKind.None ? GetType().Name : $"{Mask} + {Bias}";

        /// <summary>
        /// The mask object of a kind (null for <see cref="MaskKind.None"/>): seqlens for the block-diagonal kinds, a window for
        /// the local ones. For the test and device harnesses, which make every kind.
        /// </summary>
        internal static AttentionBias? ForMaskKind(MaskKind mask, IReadOnlyList<int>? qSeqlens = null, IReadOnlyList<int>? kvSeqlens = null, int window = 0)
        {
            BlockDiagonalMask Segments() => BlockDiagonalMask.FromSeqlens(
                qSeqlens ?? throw new ArgumentException($"{mask} needs the query seqlens.", nameof(qSeqlens)), kvSeqlens);
            return mask switch
            {
                MaskKind.None => null,
                MaskKind.Causal => new LowerTriangularMask(),
                MaskKind.CausalFromBottomRight => new LowerTriangularFromBottomRightMask(),
                MaskKind.CausalLocalFromBottomRight => new LowerTriangularFromBottomRightLocalAttentionMask(window),
                MaskKind.BlockDiagonal => Segments(),
                MaskKind.BlockDiagonalCausal => Segments().MakeCausal(),
                MaskKind.BlockDiagonalCausalFromBottomRight => Segments().MakeCausalFromBottomRight(),
                MaskKind.BlockDiagonalCausalLocal => Segments().MakeCausal().MakeLocalAttention(window),
                MaskKind.BlockDiagonalCausalLocalFromBottomRight => Segments().MakeCausalFromBottomRight().MakeLocalAttention(window),
                _ => throw new ArgumentOutOfRangeException(nameof(mask), mask, "not a mask kind."),
            };
        }

        private void RequireMaskOnly(string method)
        {
            if (Bias != BiasKind.None)
                throw new InvalidOperationException($"{method}: this bias already has an additive part ({Bias}); a variant takes one.");
        }
    }

    /// <summary>No mask (every query sees every key); the starting point for a pure additive bias.</summary>
    public sealed class NoMask : AttentionBias
    {
        /// <summary>The instance.</summary>
        public static readonly NoMask Instance = new();

        public override MaskKind Mask => MaskKind.None;
    }

    /// <summary>
    /// xFormers' <c>LowerTriangularMask</c>: causal attention, key j visible to query i when j &lt;= i. With
    /// Mq != Mkv it aligns to the top-left corner (see <see cref="LowerTriangularFromBottomRightMask"/>).
    /// </summary>
    public sealed class LowerTriangularMask : AttentionBias
    {
        public override MaskKind Mask => MaskKind.Causal;
    }

    /// <summary>
    /// xFormers' <c>LowerTriangularFromBottomRightMask</c>: j &lt;= i + (Mkv - Mq); the last query sees every key.
    /// </summary>
    public sealed class LowerTriangularFromBottomRightMask : AttentionBias
    {
        public override MaskKind Mask => MaskKind.CausalFromBottomRight;

        /// <summary>The same diagonal with a sliding window: xFormers' <c>make_local_attention(window_size)</c>.</summary>
        public LowerTriangularFromBottomRightLocalAttentionMask MakeLocalAttention(int window) => new(window);
    }

    /// <summary>
    /// xFormers' <c>LowerTriangularFromBottomRightLocalAttentionMask</c>: <see cref="LowerTriangularFromBottomRightMask"/>
    /// with a sliding window. Key j is visible to query i when Mkv − Mq − window &lt; j − i ≤ Mkv − Mq: each query sees at
    /// most <see cref="Window"/> keys, ending at its diagonal (Mistral's sliding window when Mq = Mkv). Tiles outside the
    /// band are never loaded, so the cost grows with the window, not with the sequence.
    /// </summary>
    public sealed class LowerTriangularFromBottomRightLocalAttentionMask : AttentionBias
    {
        /// <summary>A local mask of <paramref name="window"/> keys (at least 1).</summary>
        public LowerTriangularFromBottomRightLocalAttentionMask(int window) => Window = LocalWindow.Check(window);

        public override MaskKind Mask => MaskKind.CausalLocalFromBottomRight;

        public override int Window { get; }

        public override string ToString() => $"{GetType().Name}(window={Window})";
    }

    /// <summary>The window check the local masks share.</summary>
    internal static class LocalWindow
    {
        public static int Check(int window) => window >= 1
            ? window
            : throw new ArgumentOutOfRangeException(nameof(window), window, "A local attention window holds at least one key.");
    }

    /// <summary>An additive bias tensor [B, Hq, Mq, Mkv] (or [B, G, H, Mq, Mkv] for 5-D inputs) that may hold -inf.</summary>
    public sealed class TensorBias<T> : AttentionBias
        where T : unmanaged
    {
        /// <summary>Wraps a bias tensor; with <paramref name="requiresGrad"/> the backward writes its gradient.</summary>
        public TensorBias(Tensor<T> tensor, bool requiresGrad = false)
        {
            Tensor = tensor ?? throw new ArgumentNullException(nameof(tensor));
            RequiresGrad = requiresGrad;
        }

        /// <summary>The bias.</summary>
        public Tensor<T> Tensor { get; }

        /// <summary>Whether the backward writes dBias.</summary>
        public bool RequiresGrad { get; }

        public override MaskKind Mask => MaskKind.None;

        public override BiasKind Bias => BiasKind.Tensor;

        public override ITensor? BiasTensor => Tensor;

        public override bool BiasRequiresGrad => RequiresGrad;

        internal override AttentionBias WithIlgpuHalfTensor() =>
            typeof(T) == typeof(System.Half) ? new TensorBias<ILGPU.Half>(Tensor.Reinterpret<ILGPU.Half>(), RequiresGrad) : this;
    }

    /// <summary>
    /// ALiBi (Press et al. 2022): score(i, j) += slope[h] · (j − i), positions counted inside each segment of a
    /// block-diagonal mask. Computed inside the kernel; no Mq × Mkv tensor is ever made.
    /// </summary>
    public sealed class AlibiBias : AttentionBias
    {
        private readonly float[] slopes;

        /// <summary>ALiBi with explicit per-head slopes.</summary>
        public AlibiBias(IReadOnlyList<float> slopes)
        {
            ArgumentNullException.ThrowIfNull(slopes);
            if (slopes.Count == 0)
                throw new ArgumentException("ALiBi needs one slope per query head.", nameof(slopes));
            if (slopes.Any(s => !float.IsFinite(s)))
                throw new ArgumentException("ALiBi slopes must be finite.", nameof(slopes));
            this.slopes = slopes.ToArray();
        }

        /// <summary>ALiBi with the paper's slopes for <paramref name="heads"/> heads.</summary>
        public static AlibiBias ForHeads(int heads) => new(DefaultSlopes(heads));

        /// <summary>
        /// The paper's slopes: for n heads, a power of two, 2^(-8k/n) for k = 1..n; otherwise those of the
        /// nearest lower power of two followed by every other slope of the next one.
        /// </summary>
        public static float[] DefaultSlopes(int heads)
        {
            if (heads <= 0)
                throw new ArgumentOutOfRangeException(nameof(heads), "ALiBi needs at least one head.");
            static IEnumerable<double> PowerOfTwo(int n)
            {
                double start = Math.Pow(2, -8.0 / n);
                for (int k = 1; k <= n; k++)
                    yield return Math.Pow(start, k);
            }
            int closest = 1;
            while (closest * 2 <= heads)
                closest *= 2;
            var result = PowerOfTwo(closest).ToList();
            if (closest < heads)
                result.AddRange(PowerOfTwo(2 * closest).Where((_, i) => i % 2 == 0).Take(heads - closest));
            return result.Select(s => (float)s).ToArray();
        }

        /// <summary>Per-head slopes.</summary>
        public IReadOnlyList<float> Slopes => slopes;

        public override MaskKind Mask => MaskKind.None;

        public override BiasKind Bias => BiasKind.Alibi;

        public override IReadOnlyList<float>? AlibiSlopes => slopes;

        internal override MemoryBuffer1D<float, Stride1D.Dense>? AlibiSlopesOn(Accelerator accelerator) =>
            onDevice.GetValue(accelerator, acc =>
            {
                var buffer = acc.Allocate1D<float>(slopes.Length);
                buffer.View.CopyFromCPU(slopes);
                return buffer;
            });

        private readonly ConditionalWeakTable<Accelerator, MemoryBuffer1D<float, Stride1D.Dense>> onDevice = new();
    }

    /// <summary>
    /// xFormers' <c>BlockDiagonalMask</c>: a batch of variable-length sequences packed along the token
    /// dimension of a [1, total, H, K] tensor; each query attends only to the keys of its own sequence.
    /// </summary>
    public class BlockDiagonalMask : AttentionBias
    {
        private readonly int[] qSeqlens;
        private readonly int[] kvSeqlens;
        private readonly int[] qStarts;
        private readonly int[] kvStarts;
        private readonly ConditionalWeakTable<Accelerator, DeviceSegments> onDevice = new();

        private protected BlockDiagonalMask(int[] qSeqlens, int[] kvSeqlens)
        {
            this.qSeqlens = qSeqlens;
            this.kvSeqlens = kvSeqlens;
            qStarts = Starts(qSeqlens);
            kvStarts = Starts(kvSeqlens);
        }

        /// <summary>
        /// Segments from sequence lengths; without <paramref name="kvSeqlen"/> the keys have the queries'
        /// lengths. Lengths may be 0 (an empty sequence).
        /// </summary>
        public static BlockDiagonalMask FromSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int>? kvSeqlen = null)
        {
            var (q, kv) = CheckSeqlens(qSeqlen, kvSeqlen);
            return new BlockDiagonalMask(q, kv);
        }

        /// <summary>
        /// Packs a list of [1, M_i, H, K] tensors into one [1, ΣM_i, H, K] tensor and returns the mask for it.
        /// </summary>
        public static (BlockDiagonalMask Mask, Tensor<T> Packed) FromTensorList<T>(IReadOnlyList<Tensor<T>> tensors)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(tensors);
            if (tensors.Count == 0)
                throw new ArgumentException("Need at least one tensor.", nameof(tensors));
            var first = tensors[0];
            for (int t = 0; t < tensors.Count; t++)
            {
                var x = tensors[t];
                ArgumentNullException.ThrowIfNull(x, $"tensors[{t}]");
                x.ThrowIfDisposed($"tensors[{t}]");
                if (x.Rank < 2 || x.Dim(0) != 1)
                    throw new ArgumentException($"tensors[{t}] is {x.ShapeString}; expected [1, M, ...].", nameof(tensors));
                if (x.Rank != first.Rank || !x.Shape[2..].SequenceEqual(first.Shape[2..]))
                    throw new ArgumentException($"tensors[{t}] is {x.ShapeString}; its trailing dims must match tensors[0] {first.ShapeString}.", nameof(tensors));
                if (x.Context != first.Context)
                    throw new ArgumentException($"tensors[{t}] lives on another context.", nameof(tensors));
            }
            var lengths = tensors.Select(x => x.Dim(1)).ToArray();
            var shape = first.Shape.ToArray();
            shape[1] = lengths.Sum();
            var packed = Tensor<T>.Empty(first.Context, shape);
            var mask = FromSeqlens(lengths);
            for (int t = 0; t < tensors.Count; t++)
                packed.Narrow(1, mask.qStarts[t], lengths[t]).CopyFrom(tensors[t]);
            return (mask, packed);
        }

        public override MaskKind Mask => MaskKind.BlockDiagonal;

        public override BlockDiagonalMask? Segments => this;

        /// <summary>Number of sequences.</summary>
        public int Count => qSeqlens.Length;

        /// <summary>Query lengths.</summary>
        public IReadOnlyList<int> QSeqlens => qSeqlens;

        /// <summary>Key/value lengths.</summary>
        public IReadOnlyList<int> KvSeqlens => kvSeqlens;

        /// <summary>Query start offsets, Count + 1 of them (the last is the total).</summary>
        public IReadOnlyList<int> QSeqStarts => qStarts;

        /// <summary>Key/value start offsets, Count + 1 of them.</summary>
        public IReadOnlyList<int> KvSeqStarts => kvStarts;

        /// <summary>Total query tokens.</summary>
        public int TotalQ => qStarts[^1];

        /// <summary>Total key/value tokens.</summary>
        public int TotalKv => kvStarts[^1];

        /// <summary>The same segments, causal (top-left) inside each: xFormers' <c>make_causal()</c>.</summary>
        public BlockDiagonalCausalMask MakeCausal() => new(qSeqlens, kvSeqlens);

        /// <summary>
        /// The same segments, causal inside each with the diagonal at the segment's bottom-right corner: xFormers'
        /// <c>make_causal_from_bottomright()</c>.
        /// </summary>
        public BlockDiagonalCausalFromBottomRightMask MakeCausalFromBottomRight() => new(qSeqlens, kvSeqlens);

        /// <summary>The lengths, for the subclasses' derived masks.</summary>
        private protected (int[] Q, int[] Kv) Seqlens => (qSeqlens, kvSeqlens);

        /// <summary>Splits a packed query-side tensor [1, TotalQ, ...] into one view [1, M_i, ...] per sequence.</summary>
        public IReadOnlyList<Tensor<T>> Split<T>(Tensor<T> tensor)
            where T : unmanaged => SplitBy(tensor, qStarts, TotalQ, nameof(tensor));

        /// <summary>Splits a packed key/value-side tensor [1, TotalKv, ...] by the key/value lengths.</summary>
        public IReadOnlyList<Tensor<T>> SplitKv<T>(Tensor<T> tensor)
            where T : unmanaged => SplitBy(tensor, kvStarts, TotalKv, nameof(tensor));

        /// <summary>Segment ids and starts on an accelerator, uploaded once per accelerator.</summary>
        internal DeviceSegments OnDevice(Accelerator accelerator) =>
            onDevice.GetValue(accelerator, acc => new DeviceSegments(acc, qStarts, kvStarts));

        public override string ToString() =>
            $"{GetType().Name}(q=[{string.Join(", ", qSeqlens)}], kv=[{string.Join(", ", kvSeqlens)}])";

        private static IReadOnlyList<Tensor<T>> SplitBy<T>(Tensor<T> tensor, int[] starts, int total, string paramName)
            where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(tensor, paramName);
            tensor.ThrowIfDisposed(paramName);
            if (tensor.Rank < 2 || tensor.Dim(0) != 1 || tensor.Dim(1) != total)
                throw new ArgumentException($"{paramName} is {tensor.ShapeString}; expected [1, {total}, ...] (batch 1, the packed tokens).", paramName);
            var parts = new Tensor<T>[starts.Length - 1];
            for (int s = 0; s < parts.Length; s++)
                parts[s] = tensor.Narrow(1, starts[s], starts[s + 1] - starts[s]);
            return parts;
        }

        internal static (int[] Q, int[] Kv) CheckSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int>? kvSeqlen)
        {
            ArgumentNullException.ThrowIfNull(qSeqlen);
            if (qSeqlen.Count == 0)
                throw new ArgumentException("Need at least one sequence.", nameof(qSeqlen));
            for (int s = 0; s < qSeqlen.Count; s++)
            {
                if (qSeqlen[s] < 0)
                    throw new ArgumentException($"qSeqlen[{s}] = {qSeqlen[s]} is negative.", nameof(qSeqlen));
            }
            if (kvSeqlen is not null)
            {
                if (kvSeqlen.Count != qSeqlen.Count)
                    throw new ArgumentException($"kvSeqlen has {kvSeqlen.Count} sequences; qSeqlen has {qSeqlen.Count}.", nameof(kvSeqlen));
                for (int s = 0; s < kvSeqlen.Count; s++)
                {
                    if (kvSeqlen[s] < 0)
                        throw new ArgumentException($"kvSeqlen[{s}] = {kvSeqlen[s]} is negative.", nameof(kvSeqlen));
                }
            }
            long total = qSeqlen.Sum(x => (long)x);
            if (total > int.MaxValue || (kvSeqlen?.Sum(x => (long)x) ?? 0) > int.MaxValue)
                throw new ArgumentException("The sequences hold more than 2^31 - 1 tokens.", nameof(qSeqlen));
            return (qSeqlen.ToArray(), (kvSeqlen ?? qSeqlen).ToArray());
        }

        internal static int[] Starts(int[] lengths)
        {
            var starts = new int[lengths.Length + 1];
            for (int s = 0; s < lengths.Length; s++)
                starts[s + 1] = starts[s] + lengths[s];
            return starts;
        }

        /// <summary>Per-token segment ids and per-segment starts, on one accelerator.</summary>
        internal sealed class DeviceSegments
        {
            public DeviceSegments(Accelerator accelerator, int[] qStarts, int[] kvStarts)
            {
                QSegment = Upload(accelerator, SegmentIds(qStarts));
                KvSegment = Upload(accelerator, SegmentIds(kvStarts));
                QStart = Upload(accelerator, qStarts);
                KvStart = Upload(accelerator, kvStarts);
            }

            public MemoryBuffer1D<int, Stride1D.Dense> QSegment { get; }

            public MemoryBuffer1D<int, Stride1D.Dense> KvSegment { get; }

            public MemoryBuffer1D<int, Stride1D.Dense> QStart { get; }

            public MemoryBuffer1D<int, Stride1D.Dense> KvStart { get; }

            private static int[] SegmentIds(int[] starts)
            {
                var ids = new int[starts[^1]];
                for (int s = 0; s + 1 < starts.Length; s++)
                    Array.Fill(ids, s, starts[s], starts[s + 1] - starts[s]);
                return ids;
            }

            internal static MemoryBuffer1D<int, Stride1D.Dense> Upload(Accelerator accelerator, int[] data)
            {
                // A one-element buffer stands in for an empty array: views must stay valid on every backend.
                var buffer = accelerator.Allocate1D<int>(Math.Max(1, data.Length));
                if (data.Length > 0)
                    buffer.View.SubView(0, data.Length).CopyFromCPU(data);
                return buffer;
            }
        }
    }

    /// <summary>xFormers' <c>BlockDiagonalCausalMask</c>: block-diagonal, causal (top-left) inside each sequence.</summary>
    public sealed class BlockDiagonalCausalMask : BlockDiagonalMask
    {
        internal BlockDiagonalCausalMask(int[] qSeqlens, int[] kvSeqlens)
            : base(qSeqlens, kvSeqlens)
        {
        }

        /// <summary>Causal segments from sequence lengths.</summary>
        public static new BlockDiagonalCausalMask FromSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int>? kvSeqlen = null)
        {
            var (q, kv) = CheckSeqlens(qSeqlen, kvSeqlen);
            return new BlockDiagonalCausalMask(q, kv);
        }

        public override MaskKind Mask => MaskKind.BlockDiagonalCausal;

        /// <summary>The same mask with a sliding window inside each segment: xFormers' <c>make_local_attention(window_size)</c>.</summary>
        public BlockDiagonalCausalLocalAttentionMask MakeLocalAttention(int window) => new(Seqlens.Q, Seqlens.Kv, window);
    }

    /// <summary>
    /// xFormers' <c>BlockDiagonalCausalFromBottomRightMask</c>: block-diagonal, causal inside each segment with the diagonal at
    /// the segment's bottom-right corner (key j of segment s visible to query i when j − KvStart[s+1] ≤ i − QStart[s+1]):
    /// each segment's last query sees all of its keys, as a KV-cache step with several new tokens per sequence needs.
    /// </summary>
    public sealed class BlockDiagonalCausalFromBottomRightMask : BlockDiagonalMask
    {
        internal BlockDiagonalCausalFromBottomRightMask(int[] qSeqlens, int[] kvSeqlens)
            : base(qSeqlens, kvSeqlens)
        {
        }

        /// <summary>Bottom-right causal segments from sequence lengths.</summary>
        public static new BlockDiagonalCausalFromBottomRightMask FromSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int>? kvSeqlen = null)
        {
            var (q, kv) = CheckSeqlens(qSeqlen, kvSeqlen);
            return new BlockDiagonalCausalFromBottomRightMask(q, kv);
        }

        public override MaskKind Mask => MaskKind.BlockDiagonalCausalFromBottomRight;

        /// <summary>The same mask with a sliding window inside each segment: xFormers' <c>make_local_attention(window_size)</c>.</summary>
        public BlockDiagonalCausalLocalAttentionFromBottomRightMask MakeLocalAttention(int window) => new(Seqlens.Q, Seqlens.Kv, window);
    }

    /// <summary>
    /// xFormers' <c>BlockDiagonalCausalLocalAttentionMask</c>: <see cref="BlockDiagonalCausalMask"/> with a sliding window
    /// inside each segment. Key j of segment s is visible to query i when −window &lt; (j − KvStart[s]) − (i − QStart[s]) ≤ 0.
    /// </summary>
    public sealed class BlockDiagonalCausalLocalAttentionMask : BlockDiagonalMask
    {
        internal BlockDiagonalCausalLocalAttentionMask(int[] qSeqlens, int[] kvSeqlens, int window)
            : base(qSeqlens, kvSeqlens) => Window = LocalWindow.Check(window);

        /// <summary>Local causal segments from sequence lengths and a window of at least one key.</summary>
        public static BlockDiagonalCausalLocalAttentionMask FromSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int>? kvSeqlen, int window)
        {
            LocalWindow.Check(window);
            var (q, kv) = CheckSeqlens(qSeqlen, kvSeqlen);
            return new BlockDiagonalCausalLocalAttentionMask(q, kv, window);
        }

        public override MaskKind Mask => MaskKind.BlockDiagonalCausalLocal;

        public override int Window { get; }

        public override string ToString() => base.ToString()[..^1] + $", window={Window})";
    }

    /// <summary>
    /// xFormers' <c>BlockDiagonalCausalLocalAttentionFromBottomRightMask</c>: <see cref="BlockDiagonalCausalFromBottomRightMask"/>
    /// with a sliding window inside each segment. Key j of segment s is visible to query i when
    /// −window &lt; (j − KvStart[s+1]) − (i − QStart[s+1]) ≤ 0.
    /// </summary>
    public sealed class BlockDiagonalCausalLocalAttentionFromBottomRightMask : BlockDiagonalMask
    {
        internal BlockDiagonalCausalLocalAttentionFromBottomRightMask(int[] qSeqlens, int[] kvSeqlens, int window)
            : base(qSeqlens, kvSeqlens) => Window = LocalWindow.Check(window);

        /// <summary>Local bottom-right causal segments from sequence lengths and a window of at least one key.</summary>
        public static BlockDiagonalCausalLocalAttentionFromBottomRightMask FromSeqlens(IReadOnlyList<int> qSeqlen, IReadOnlyList<int>? kvSeqlen, int window)
        {
            LocalWindow.Check(window);
            var (q, kv) = CheckSeqlens(qSeqlen, kvSeqlen);
            return new BlockDiagonalCausalLocalAttentionFromBottomRightMask(q, kv, window);
        }

        public override MaskKind Mask => MaskKind.BlockDiagonalCausalLocalFromBottomRight;

        public override int Window { get; }

        public override string ToString() => base.ToString()[..^1] + $", window={Window})";
    }

    /// <summary>A mask combined with an additive bias.</summary>
    internal sealed class CombinedBias : AttentionBias
    {
        private readonly AttentionBias mask;
        private readonly AttentionBias bias;

        public CombinedBias(AttentionBias mask, AttentionBias bias)
        {
            this.mask = mask;
            this.bias = bias;
        }

        public override MaskKind Mask => mask.Mask;

        public override BiasKind Bias => bias.Bias;

        public override BlockDiagonalMask? Segments => mask.Segments;

        public override int Window => mask.Window;

        public override ITensor? BiasTensor => bias.BiasTensor;

        internal override AttentionBias WithIlgpuHalfTensor() => new CombinedBias(mask, bias.WithIlgpuHalfTensor());

        public override bool BiasRequiresGrad => bias.BiasRequiresGrad;

        public override IReadOnlyList<float>? AlibiSlopes => bias.AlibiSlopes;

        internal override MemoryBuffer1D<float, Stride1D.Dense>? AlibiSlopesOn(Accelerator accelerator) => bias.AlibiSlopesOn(accelerator);

        public override string ToString() => $"{mask} + {bias}";
    }
}
