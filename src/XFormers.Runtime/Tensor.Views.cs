using System;

namespace XFormers
{
    /// <summary>Strided views (<see cref="TensorView{T}"/>) of a tensor's storage.</summary>
    public sealed partial class Tensor<T>
    {
        /// <summary>The whole tensor as a strided view (row-major strides).</summary>
        public TensorView<T> AsView()
        {
            var strides = new long[Rank];
            long stride = 1;
            for (int d = Rank - 1; d >= 0; d--)
            {
                strides[d] = stride;
                stride *= shape[d];
            }
            return new TensorView<T>(this, 0, (int[])shape.Clone(), strides);
        }

        /// <summary>
        /// A view with dimensions <paramref name="dim0"/> and <paramref name="dim1"/> swapped, no copy (PyTorch's
        /// <c>transpose</c>): <c>bhmk.Transpose(1, 2)</c> reads a <c>[B, H, M, K]</c> tensor as BMHK.
        /// </summary>
        public TensorView<T> Transpose(int dim0, int dim1) => AsView().Transpose(dim0, dim1);

        /// <summary>A view with the dimensions reordered, no copy (PyTorch's <c>permute</c>).</summary>
        public TensorView<T> Permute(params int[] dims) => AsView().Permute(dims);

        /// <summary>A non-owning dense tensor of shape <paramref name="newShape"/> over this storage from element <paramref name="offset"/>.</summary>
        internal Tensor<T> Slice(long offset, int[] newShape)
        {
            long length = CheckShape(newShape, nameof(newShape));
            return new Tensor<T>(Context, null, storage, View.SubView(offset, length), (int[])newShape.Clone());
        }
    }
}
