using System;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;

namespace XFormers
{
    /// <summary>
    /// A dense, row-major tensor on a <see cref="XFormersContext"/>'s accelerator. Element types: float,
    /// <see cref="ILGPU.Half"/> and <see cref="BFloat16"/> for attention inputs; float and int for the rest.
    /// A tensor made by <see cref="Reshape"/> or <see cref="Narrow"/> shares its parent's storage and does
    /// not own it.
    /// </summary>
    public sealed partial class Tensor<T> : IDisposable
        where T : unmanaged
    {
        private readonly int[] shape;
        private readonly MemoryBuffer1D<T, Stride1D.Dense>? owner;

        private Tensor(XFormersContext context, MemoryBuffer1D<T, Stride1D.Dense>? owner, ArrayView<T> view, int[] shape)
        {
            Context = context;
            this.owner = owner;
            View = view;
            this.shape = shape;
        }

        /// <summary>The context whose accelerator holds the data.</summary>
        public XFormersContext Context { get; }

        /// <summary>The data as an ILGPU view (for kernels).</summary>
        public ArrayView<T> View { get; }

        /// <summary>The dimensions.</summary>
        public ReadOnlySpan<int> Shape => shape;

        /// <summary>Number of dimensions.</summary>
        public int Rank => shape.Length;

        /// <summary>Number of elements.</summary>
        public long Length => View.Length;

        /// <summary>Size of dimension <paramref name="dim"/>; negative counts from the end.</summary>
        public int Dim(int dim) => shape[dim < 0 ? shape.Length + dim : dim];

        /// <summary>The shape as text, e.g. <c>[2, 512, 8, 64]</c>.</summary>
        public string ShapeString => FormatShape(shape);

        /// <summary>Whether this tensor owns its storage.</summary>
        public bool OwnsStorage => owner is not null;

        /// <summary>An uninitialized tensor.</summary>
        public static Tensor<T> Empty(XFormersContext context, params int[] shape)
        {
            ArgumentNullException.ThrowIfNull(context);
            long length = CheckShape(shape, nameof(shape));
            var buffer = context.Accelerator.Allocate1D<T>(length);
            context.TrackAllocation(buffer.LengthInBytes);
            return new Tensor<T>(context, buffer, buffer.View, (int[])shape.Clone());
        }

        /// <summary>A tensor of zeros.</summary>
        public static Tensor<T> Zeros(XFormersContext context, params int[] shape)
        {
            var tensor = Empty(context, shape);
            tensor.Clear();
            return tensor;
        }

        /// <summary>Copies host data into a new tensor of the given shape.</summary>
        public static Tensor<T> FromArray(XFormersContext context, T[] data, params int[] shape)
        {
            ArgumentNullException.ThrowIfNull(data);
            long length = CheckShape(shape, nameof(shape));
            if (data.LongLength != length)
                throw new ArgumentException($"data has {data.LongLength} elements but shape {FormatShape(shape)} needs {length}.", nameof(data));
            var tensor = Empty(context, shape);
            tensor.CopyFrom(data);
            return tensor;
        }

        /// <summary>Rounds float host data to <typeparamref name="T"/> into a new tensor.</summary>
        public static Tensor<T> FromFloats(XFormersContext context, float[] data, params int[] shape)
        {
            ArgumentNullException.ThrowIfNull(data);
            var converted = new T[data.Length];
            for (int i = 0; i < data.Length; i++)
                converted[i] = ElementType.FromFloat<T>(data[i]);
            return FromArray(context, converted, shape);
        }

        /// <summary>Normal(0, std²) values from a seeded generator (the same seed gives the same tensor everywhere).</summary>
        public static Tensor<T> RandomNormal(XFormersContext context, int seed, float std, params int[] shape)
        {
            long length = CheckShape(shape, nameof(shape));
            return FromFloats(context, HostRandom.Normal(seed, checked((int)length), std), shape);
        }

        /// <summary>Uniform values in [low, high) from a seeded generator.</summary>
        public static Tensor<T> RandomUniform(XFormersContext context, int seed, float low, float high, params int[] shape)
        {
            long length = CheckShape(shape, nameof(shape));
            return FromFloats(context, HostRandom.Uniform(seed, checked((int)length), low, high), shape);
        }

        /// <summary>Copies the data to a new host array.</summary>
        public T[] ToArray()
        {
            var result = new T[Length];
            if (Length > 0)
            {
                Context.Accelerator.Synchronize();
                View.CopyToCPU(result);
            }
            return result;
        }

        /// <summary>Copies the data to the host, widened to float.</summary>
        public float[] ToFloatArray()
        {
            var data = ToArray();
            var result = new float[data.Length];
            for (int i = 0; i < data.Length; i++)
                result[i] = ElementType.ToFloat(data[i]);
            return result;
        }

        /// <summary>Copies the data to the host, widened to double.</summary>
        public double[] ToDoubleArray() => Array.ConvertAll(ToFloatArray(), x => (double)x);

        /// <summary>Overwrites the data from a host array of exactly <see cref="Length"/> elements.</summary>
        public void CopyFrom(T[] data)
        {
            ArgumentNullException.ThrowIfNull(data);
            if (data.LongLength != Length)
                throw new ArgumentException($"data has {data.LongLength} elements; the tensor {ShapeString} has {Length}.", nameof(data));
            if (Length > 0)
                View.CopyFromCPU(data);
        }

        /// <summary>Copies another tensor's data (same element count) into this one, on the accelerator.</summary>
        public void CopyFrom(Tensor<T> source)
        {
            ArgumentNullException.ThrowIfNull(source);
            if (source.Length != Length)
                throw new ArgumentException($"source {source.ShapeString} has {source.Length} elements; this tensor {ShapeString} has {Length}.", nameof(source));
            if (Length > 0)
                source.View.CopyTo(View);
        }

        /// <summary>Sets every element to zero.</summary>
        public void Clear()
        {
            if (Length > 0)
                View.MemSetToZero();
        }

        /// <summary>A view of the same storage with another shape of the same element count; one dimension may be -1.</summary>
        public Tensor<T> Reshape(params int[] newShape)
        {
            ArgumentNullException.ThrowIfNull(newShape);
            var resolved = (int[])newShape.Clone();
            int inferred = Array.IndexOf(resolved, -1);
            if (inferred >= 0)
            {
                long known = resolved.Where((d, i) => i != inferred).Aggregate(1L, (a, d) => a * d);
                if (known <= 0 || Length % known != 0)
                    throw new ArgumentException($"cannot infer -1 in {FormatShape(newShape)} for a tensor of {Length} elements.", nameof(newShape));
                resolved[inferred] = (int)(Length / known);
            }
            long length = CheckShape(resolved, nameof(newShape));
            if (length != Length)
                throw new ArgumentException($"shape {FormatShape(resolved)} has {length} elements; the tensor {ShapeString} has {Length}.", nameof(newShape));
            return new Tensor<T>(Context, null, View, resolved);
        }

        /// <summary>
        /// A view of rows [start, start + length) of dimension <paramref name="dim"/>; every dimension before it
        /// must be 1, so the rows are contiguous in storage.
        /// </summary>
        public Tensor<T> Narrow(int dim, int start, int length)
        {
            if (dim < 0 || dim >= Rank)
                throw new ArgumentOutOfRangeException(nameof(dim), $"dim {dim} is outside a rank-{Rank} tensor.");
            for (int d = 0; d < dim; d++)
            {
                if (shape[d] != 1)
                    throw new ArgumentException($"Narrow along dim {dim} needs every earlier dimension to be 1 (a dense result); {ShapeString} has {shape[d]} at dim {d}. AsView().Narrow({dim}, {start}, {length}) gives a strided view of any dimension.", nameof(dim));
            }
            if (start < 0 || length < 0 || start + length > shape[dim])
                throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + length}) are outside dim {dim} of size {shape[dim]}.");
            long inner = 1;
            for (int d = dim + 1; d < Rank; d++)
                inner *= shape[d];
            var newShape = (int[])shape.Clone();
            newShape[dim] = length;
            return new Tensor<T>(Context, null, View.SubView(start * inner, length * inner), newShape);
        }

        public void Dispose()
        {
            if (owner is null || disposed)
                return;
            disposed = true;
            Context.TrackAllocation(-owner.LengthInBytes);
            owner.Dispose();
        }

        private bool disposed;

        public override string ToString() => $"Tensor<{typeof(T).Name}>{ShapeString}";

        internal static string FormatShape(ReadOnlySpan<int> dims) => "[" + string.Join(", ", dims.ToArray()) + "]";

        private static long CheckShape(int[] dims, string paramName)
        {
            ArgumentNullException.ThrowIfNull(dims, paramName);
            long length = 1;
            foreach (int d in dims)
            {
                if (d < 0)
                    throw new ArgumentException($"shape {FormatShape(dims)} has a negative dimension.", paramName);
                length = checked(length * d);
            }
            return length;
        }
    }

    /// <summary>Seeded host-side random numbers (tensor initialization, tests).</summary>
    public static class HostRandom
    {
        /// <summary>Normal(0, std²) samples (Box–Muller over <see cref="Random"/> with the seed).</summary>
        public static float[] Normal(int seed, int count, float std = 1f)
        {
            var random = new Random(seed);
            var result = new float[count];
            for (int i = 0; i < count; i += 2)
            {
                double u1 = 1.0 - random.NextDouble();
                double u2 = random.NextDouble();
                double radius = Math.Sqrt(-2.0 * Math.Log(u1));
                result[i] = (float)(std * radius * Math.Cos(2 * Math.PI * u2));
                if (i + 1 < count)
                    result[i + 1] = (float)(std * radius * Math.Sin(2 * Math.PI * u2));
            }
            return result;
        }

        /// <summary>Uniform samples in [low, high).</summary>
        public static float[] Uniform(int seed, int count, float low, float high)
        {
            var random = new Random(seed);
            var result = new float[count];
            for (int i = 0; i < count; i++)
                result[i] = (float)(low + (high - low) * random.NextDouble());
            return result;
        }
    }

    /// <summary>Shorthands for tensors of any element type.</summary>
    public static class Tensor
    {
        /// <summary>The DSL dtype of a tensor.</summary>
        public static DType DTypeOf<T>(Tensor<T> tensor)
            where T : unmanaged => ElementType.Of<T>();
    }
}
