using System;
using System.Linq;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>
    /// A strided view of a <see cref="Tensor{T}"/>'s storage, PyTorch's <c>transpose</c>/<c>permute</c>/<c>narrow</c>:
    /// no data moves when it is made. A PyTorch-layout <c>[B, H, M, K]</c> tensor becomes the BMHK view
    /// <c>[B, M, H, K]</c> with <c>bhmk.Transpose(1, 2)</c>, and <see cref="Fmha"/> takes it as it is.
    /// <para>
    /// Where a copy happens: the attention kernels read dense BMHK memory, so <see cref="Fmha"/> gathers a view
    /// that is not dense (<see cref="IsContiguous"/> false) into a temporary dense tensor on the accelerator, one
    /// copy kernel per input, before it launches; outputs and gradients are dense BMHK tensors. A dense view is
    /// used without a copy. <see cref="ToTensor"/> and <see cref="CopyFrom"/> make the same copies explicitly.
    /// </para>
    /// A view does not own the storage: it is valid while the tensor it came from is.
    /// </summary>
    public sealed class TensorView<T>
        where T : unmanaged
    {
        private readonly int[] shape;
        private readonly long[] strides;

        internal TensorView(Tensor<T> storage, long offset, int[] shape, long[] strides)
        {
            Storage = storage;
            Offset = offset;
            this.shape = shape;
            this.strides = strides;
        }

        /// <summary>The tensor whose storage this view reads.</summary>
        public Tensor<T> Storage { get; }

        /// <summary>Index of the view's first element in <see cref="Storage"/>.</summary>
        public long Offset { get; }

        /// <summary>The dimensions.</summary>
        public ReadOnlySpan<int> Shape => shape;

        /// <summary>Element strides, one per dimension.</summary>
        public ReadOnlySpan<long> Strides => strides;

        /// <summary>Number of dimensions.</summary>
        public int Rank => shape.Length;

        /// <summary>Number of elements.</summary>
        public long Length => shape.Aggregate(1L, (a, d) => a * d);

        /// <summary>Size of dimension <paramref name="dim"/>; negative counts from the end.</summary>
        public int Dim(int dim) => shape[Normalize(dim, nameof(dim))];

        /// <summary>The context whose accelerator holds the data.</summary>
        public XFormersContext Context => Storage.Context;

        /// <summary>The shape as text, e.g. <c>[2, 512, 8, 64]</c>.</summary>
        public string ShapeString => Tensor<T>.FormatShape(shape);

        /// <summary>Whether the elements lie dense and row-major in storage (then nothing is copied to read it as a tensor).</summary>
        public bool IsContiguous
        {
            get
            {
                long expected = 1;
                for (int d = Rank - 1; d >= 0; d--)
                {
                    if (shape[d] != 1 && strides[d] != expected)
                        return false;
                    expected *= shape[d];
                }
                return true;
            }
        }

        /// <summary>The view with dimensions <paramref name="dim0"/> and <paramref name="dim1"/> swapped (PyTorch's <c>transpose</c>).</summary>
        public TensorView<T> Transpose(int dim0, int dim1)
        {
            int a = Normalize(dim0, nameof(dim0)), b = Normalize(dim1, nameof(dim1));
            var order = Enumerable.Range(0, Rank).ToArray();
            (order[a], order[b]) = (order[b], order[a]);
            return Permute(order);
        }

        /// <summary>The view with its dimensions reordered: dimension i of the result is dimension <c>dims[i]</c> of this one.</summary>
        public TensorView<T> Permute(params int[] dims)
        {
            ArgumentNullException.ThrowIfNull(dims);
            if (dims.Length != Rank)
                throw new ArgumentException($"Permute got {dims.Length} dimensions for a rank-{Rank} view {ShapeString}.", nameof(dims));
            var resolved = dims.Select(d => Normalize(d, nameof(dims))).ToArray();
            if (resolved.Distinct().Count() != Rank)
                throw new ArgumentException($"Permute({string.Join(", ", dims)}) names a dimension twice.", nameof(dims));
            return new TensorView<T>(Storage, Offset, resolved.Select(d => shape[d]).ToArray(), resolved.Select(d => strides[d]).ToArray());
        }

        /// <summary>Rows [start, start + length) of dimension <paramref name="dim"/>, any dimension (PyTorch's <c>narrow</c>).</summary>
        public TensorView<T> Narrow(int dim, int start, int length)
        {
            int d = Normalize(dim, nameof(dim));
            if (start < 0 || length < 0 || (long)start + length > shape[d])
                throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {(long)start + length}) are outside dim {d} of size {shape[d]} in {ShapeString}.");
            var newShape = (int[])shape.Clone();
            newShape[d] = length;
            return new TensorView<T>(Storage, Offset + start * strides[d], newShape, (long[])strides.Clone());
        }

        /// <summary>A new dense tensor with this view's shape and elements: one copy kernel on the accelerator.</summary>
        public Tensor<T> ToTensor()
        {
            var dense = Tensor<T>.Empty(Context, shape);
            try
            {
                StridedCopy.Gather(Context.Accelerator, Storage.View, dense.View, Layout);
            }
            catch
            {
                dense.Dispose();
                throw;
            }
            return dense;
        }

        /// <summary>Copies the elements to a new host array, in this view's row-major order.</summary>
        public T[] ToArray()
        {
            using var dense = ToTensor();
            return dense.ToArray();
        }

        /// <summary>Writes a dense tensor of this view's shape into the viewed elements: one copy kernel on the accelerator.</summary>
        public void CopyFrom(Tensor<T> source)
        {
            ArgumentNullException.ThrowIfNull(source);
            if (!source.Shape.SequenceEqual(shape))
                throw new ArgumentException($"source is {source.ShapeString}; this view is {ShapeString}.", nameof(source));
            if (source.Context != Context)
                throw new ArgumentException("source lives on another context than this view.", nameof(source));
            StridedCopy.Scatter(Context.Accelerator, source.View, Storage.View, Layout);
        }

        /// <summary>
        /// The view as a dense tensor: an alias of the storage when <see cref="IsContiguous"/> (<paramref name="copied"/>
        /// false; disposing it frees nothing), else a new tensor the caller owns (<paramref name="copied"/> true).
        /// </summary>
        internal Tensor<T> AsDense(out bool copied)
        {
            copied = !IsContiguous;
            if (!copied)
                return Storage.Slice(Offset, shape);
            var copy = ToTensor();
            // The region of the storage this view reads, at the storage's version now (stale-forward checks).
            var whole = Storage.Stamp();
            long count = 1;
            foreach (int d in shape)
                count *= d;
            copy.StampAs(whole with { Offset = whole.Offset + Offset * System.Runtime.CompilerServices.Unsafe.SizeOf<T>(), Length = count });
            return copy;
        }

        public override string ToString() => $"TensorView<{typeof(T).Name}>{ShapeString}";

        /// <summary>Views a whole tensor.</summary>
        public static implicit operator TensorView<T>(Tensor<T> tensor)
        {
            ArgumentNullException.ThrowIfNull(tensor);
            return tensor.AsView();
        }

        private StridedLayout Layout
        {
            get
            {
                if (Rank > StridedLayout.MaxRank)
                    throw new NotSupportedException($"strided copies take up to {StridedLayout.MaxRank} dimensions; {ShapeString} has {Rank}.");
                return StridedLayout.Create(shape, strides, Offset);
            }
        }

        private int Normalize(int dim, string paramName)
        {
            int d = dim < 0 ? dim + Rank : dim;
            if (d < 0 || d >= Rank)
                throw new ArgumentOutOfRangeException(paramName, $"dim {dim} is outside a rank-{Rank} view {ShapeString}.");
            return d;
        }
    }
}
