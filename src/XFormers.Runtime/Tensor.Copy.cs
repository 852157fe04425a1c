using System;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers
{
    /// <summary>Copies between host memory (spans, <see cref="Memory{T}"/>) and a tensor; aliases of another element type.</summary>
    public sealed partial class Tensor<T> : ITensor
    {
        Type ITensor.ElementType => typeof(T);

        /// <summary>Copies host data into a new tensor of the given shape.</summary>
        public static Tensor<T> FromSpan(XFormersContext context, ReadOnlySpan<T> data, params int[] shape)
        {
            long length = CheckShape(shape, nameof(shape));
            if (data.Length != length)
                throw new ArgumentException($"data has {data.Length} elements but shape {FormatShape(shape)} needs {length}.", nameof(data));
            var tensor = Empty(context, shape);
            try
            {
                tensor.CopyFrom(data);
            }
            catch
            {
                tensor.Dispose();
                throw;
            }
            return tensor;
        }

        /// <summary>Overwrites the data from host memory of exactly <see cref="Length"/> elements.</summary>
        public void CopyFrom(ReadOnlySpan<T> data)
        {
            if (data.Length != Length)
                throw new ArgumentException($"data has {data.Length} elements; the tensor {ShapeString} has {Length}.", nameof(data));
            if (Length > 0)
                View.CopyFromCPU(data);
        }

        /// <summary>Overwrites the data from host memory of exactly <see cref="Length"/> elements.</summary>
        public void CopyFrom(ReadOnlyMemory<T> data) => CopyFrom(data.Span);

        /// <summary>Copies the data into host memory of exactly <see cref="Length"/> elements (waits for queued work first).</summary>
        public void CopyTo(Span<T> destination)
        {
            if (destination.Length != Length)
                throw new ArgumentException($"destination has {destination.Length} elements; the tensor {ShapeString} has {Length}.", nameof(destination));
            if (Length > 0)
            {
                Context.Accelerator.Synchronize();
                View.CopyToCPU(destination);
            }
        }

        /// <summary>Copies the data into host memory of exactly <see cref="Length"/> elements (waits for queued work first).</summary>
        public void CopyTo(Memory<T> destination) => CopyTo(destination.Span);

        /// <summary>
        /// The same storage read as another element type of the same size (System.Half as ILGPU.Half); the alias
        /// does not own the storage.
        /// </summary>
        internal unsafe Tensor<TOther> Reinterpret<TOther>()
            where TOther : unmanaged
        {
            if (sizeof(TOther) != sizeof(T))
                throw new InvalidOperationException($"cannot read {typeof(T).Name} storage as {typeof(TOther).Name}: the sizes differ.");
            // The same memory under another element type: it keeps this tensor's stamp (a gathered view's, if any).
            return new Tensor<TOther>(Context, null, storage, View.Cast<TOther>(), (int[])shape.Clone()) { stampOf = stampOf };
        }
    }
}
