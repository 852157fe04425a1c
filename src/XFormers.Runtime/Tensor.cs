using System;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
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
        private readonly long length;
        private readonly MemoryBuffer1D<T, Stride1D.Dense>? owner;
        private readonly TensorStorage storage;
        private readonly ArrayView<T> view;
        private bool disposed;

        private Tensor(XFormersContext context, MemoryBuffer1D<T, Stride1D.Dense>? owner, TensorStorage storage, ArrayView<T> view, int[] shape)
        {
            Context = context;
            this.owner = owner;
            this.storage = storage;
            this.view = view;
            this.shape = shape;
            length = view.Length;
        }

        /// <summary>The context whose accelerator holds the data.</summary>
        public XFormersContext Context { get; }

        /// <summary>The data as an ILGPU view (for kernels); <see cref="ObjectDisposedException"/> once the tensor or its storage is disposed.</summary>
        public ArrayView<T> View
        {
            get
            {
                // The name is built only on failure: kernels' launch code reads View on every call.
                if (IsDisposed)
                    ThrowIfDisposed(ToString());
                return view;
            }
        }

        /// <summary>
        /// Whether the tensor can no longer be used: it was disposed, it is a view of a tensor that was, or its context was.
        /// </summary>
        public bool IsDisposed => disposed || storage.IsDisposed || Context.IsDisposed;

        /// <summary>
        /// Counts the writes made through this library to the tensor's storage (shared with its views), like PyTorch's
        /// <c>_version</c>: <see cref="CopyFrom(T[])"/>, <see cref="Clear"/> and every attention call that writes it bump it.
        /// Writes by a caller's own kernels through <see cref="View"/> are not counted.
        /// </summary>
        public long Version => storage.Version;

        /// <summary>The dimensions.</summary>
        public ReadOnlySpan<int> Shape => shape;

        /// <summary>Number of dimensions.</summary>
        public int Rank => shape.Length;

        /// <summary>Number of elements.</summary>
        public long Length => length;

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
            context.ThrowIfDisposed();
            long length = CheckShape(shape, nameof(shape));
            CheckFits(context, shape, length);
            var buffer = context.Accelerator.Allocate1D<T>(length);
            context.TrackAllocation(buffer.LengthInBytes);
            return new Tensor<T>(context, buffer, new TensorStorage(), buffer.View, (int[])shape.Clone());
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
            int length = CheckHostLength(shape);
            return FromFloats(context, HostRandom.Normal(seed, length, std), shape);
        }

        /// <summary>Uniform values in [low, high) from a seeded generator.</summary>
        public static Tensor<T> RandomUniform(XFormersContext context, int seed, float low, float high, params int[] shape)
        {
            int length = CheckHostLength(shape);
            return FromFloats(context, HostRandom.Uniform(seed, length, low, high), shape);
        }

        /// <summary>
        /// Element (i0) of a rank-1 tensor, read to the host (one small copy: for mods' host-side twins, tests and
        /// inspection, not for loops over a tensor). A mod's <c>args.Table[i]</c> reads a table this way when the C# runs on the host.
        /// </summary>
        public T this[int i0] => Element(i0, 0, 0, 1);

        /// <summary>Element (i0, i1) of a rank-2 tensor, read to the host.</summary>
        public T this[int i0, int i1] => Element(i0, i1, 0, 2);

        /// <summary>Element (i0, i1, i2) of a rank-3 tensor, read to the host.</summary>
        public T this[int i0, int i1, int i2] => Element(i0, i1, i2, 3);

        private T Element(int i0, int i1, int i2, int rank)
        {
            ThrowIfDisposed("this");
            if (Rank != rank)
                throw new ArgumentException($"{this} has rank {Rank}; it was indexed with {rank} indices.");
            int[] index = { i0, i1, i2 };
            long offset = 0;
            for (int d = 0; d < rank; d++)
            {
                if ((uint)index[d] >= (uint)shape[d])
                    throw new IndexOutOfRangeException($"Index {index[d]} of dim {d} is outside {this}.");
                offset = offset * shape[d] + index[d];
            }
            var result = new T[1];
            Context.Accelerator.Synchronize();
            View.SubView(offset, 1).CopyToCPU(result);
            return result[0];
        }

        /// <summary>Copies the data to a new host array.</summary>
        public T[] ToArray()
        {
            ThrowIfDisposed("this");
            if (Length > Array.MaxLength)
                throw new InvalidOperationException($"{this} has {Length} elements, more than a .NET array holds ({Array.MaxLength}).");
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
            ThrowIfDisposed("this");
            if (data.LongLength != Length)
                throw new ArgumentException($"data has {data.LongLength} elements; the tensor {ShapeString} has {Length}.", nameof(data));
            if (Length > 0)
                view.CopyFromCPU(data);
            MarkWritten();
        }

        /// <summary>Copies another tensor's data (same element count) into this one, on the accelerator.</summary>
        public void CopyFrom(Tensor<T> source)
        {
            ArgumentNullException.ThrowIfNull(source);
            ThrowIfDisposed("this");
            source.ThrowIfDisposed(nameof(source));
            source.CheckContext(Context, nameof(source));
            if (source.Length != Length)
                throw new ArgumentException($"source {source.ShapeString} has {source.Length} elements; this tensor {ShapeString} has {Length}.", nameof(source));
            if (Length > 0 && !ReferenceEquals(source, this))
                source.view.CopyTo(view);
            MarkWritten();
        }

        /// <summary>Sets every element to zero.</summary>
        public void Clear()
        {
            ThrowIfDisposed("this");
            if (Length > 0)
                view.MemSetToZero();
            MarkWritten();
        }

        /// <summary>A view of the same storage with another shape of the same element count; one dimension may be -1.</summary>
        public Tensor<T> Reshape(params int[] newShape)
        {
            ArgumentNullException.ThrowIfNull(newShape);
            ThrowIfDisposed("this");
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
            return new Tensor<T>(Context, null, storage, view, resolved);
        }

        /// <summary>
        /// A view of rows [start, start + length) of dimension <paramref name="dim"/>; every dimension before it
        /// must be 1, so the rows are contiguous in storage.
        /// </summary>
        public Tensor<T> Narrow(int dim, int start, int length)
        {
            ThrowIfDisposed("this");
            if (dim < 0 || dim >= Rank)
                throw new ArgumentOutOfRangeException(nameof(dim), $"dim {dim} is outside a rank-{Rank} tensor.");
            for (int d = 0; d < dim; d++)
            {
                if (shape[d] != 1)
                    throw new ArgumentException($"Narrow along dim {dim} needs every earlier dimension to be 1 (a dense result); {ShapeString} has {shape[d]} at dim {d}. AsView().Narrow({dim}, {start}, {length}) gives a strided view of any dimension.", nameof(dim));
            }
            if (start < 0 || length < 0 || (long)start + length > shape[dim])
                throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + length}) are outside dim {dim} of size {shape[dim]}.");
            long inner = 1;
            for (int d = dim + 1; d < Rank; d++)
                inner *= shape[d];
            var newShape = (int[])shape.Clone();
            newShape[dim] = length;
            return new Tensor<T>(Context, null, storage, view.SubView(start * inner, length * inner), newShape);
        }

        /// <summary>
        /// Frees the storage of a tensor that owns it; views of it become unusable. Disposing a view only makes the view
        /// itself unusable.
        /// </summary>
        public void Dispose()
        {
            if (disposed)
                return;
            disposed = true;
            if (owner is null)
                return;
            storage.IsDisposed = true;
            Context.TrackAllocation(-owner.LengthInBytes);
            owner.Dispose();
        }

        /// <summary>
        /// <see cref="ObjectDisposedException"/> naming <paramref name="argument"/> when the tensor, the tensor a view was
        /// made from, or the context is disposed.
        /// </summary>
        internal void ThrowIfDisposed(string argument)
        {
            Context.ThrowIfDisposed();
            if (disposed)
                throw new ObjectDisposedException(argument, $"{argument} ({this}) was disposed.");
            if (storage.IsDisposed)
                throw new ObjectDisposedException(argument, $"{argument} ({this}) is a view of a tensor that was disposed.");
        }

        /// <summary><see cref="ArgumentException"/> naming <paramref name="argument"/> when the tensor lives on another context.</summary>
        internal void CheckContext(XFormersContext context, string argument)
        {
            if (!ReferenceEquals(Context, context))
                throw new ArgumentException($"{argument} lives on another context ({Context}) than the call's.", argument);
        }

        /// <summary>The last forward that wrote a log-sum-exp into this storage (see <see cref="Fmha"/>'s backward check).</summary>
        internal ForwardRecord? LastForward => storage.LastForward;

        internal void RecordForward(ForwardRecord record) => storage.LastForward = record;

        /// <summary>Records a write to the storage (<see cref="Version"/>).</summary>
        internal void MarkWritten() => storage.MarkWritten();

        /// <summary>The storage, region and version this tensor reads now, for checks that the data has not changed since.</summary>
        internal TensorStamp Stamp() => stampOf ?? new(storage, ((IContiguousArrayView)view).IndexInBytes, length, storage.Version);

        /// <summary>
        /// For a dense copy of a strided view made just before a launch: the stamp of the view it was copied from, so a
        /// forward recorded on the copy and a backward given the same view (copied again) match, and a write to the
        /// view's storage in between does not.
        /// </summary>
        private TensorStamp? stampOf;

        internal void StampAs(TensorStamp source) => stampOf = source;

        public override string ToString() => $"Tensor<{typeof(T).Name}>{ShapeString}";

        internal static string FormatShape(ReadOnlySpan<int> dims) => "[" + string.Join(", ", dims.ToArray()) + "]";

        /// <summary>The element count of a shape; an <see cref="ArgumentException"/> naming it when a dimension is negative or the count or its bytes pass 2^63.</summary>
        private static long CheckShape(int[] dims, string paramName)
        {
            ArgumentNullException.ThrowIfNull(dims, paramName);
            long length = 1;
            bool overflow = false;
            foreach (int d in dims)
            {
                if (d < 0)
                    throw new ArgumentException($"shape {FormatShape(dims)} has a negative dimension.", paramName);
                overflow |= d != 0 && length > long.MaxValue / d;
                length = unchecked(length * d);
            }
            if (length == 0)
                return 0;
            if (overflow || length > long.MaxValue / Unsafe.SizeOf<T>())
                throw new ArgumentException($"shape {FormatShape(dims)} has more elements than a 64-bit byte count of {typeof(T).Name} can hold.", paramName);
            return length;
        }

        /// <summary>An <see cref="ArgumentException"/> naming the shape when its bytes exceed what the accelerator can hold.</summary>
        private static void CheckFits(XFormersContext context, int[] dims, long length)
        {
            long bytes = length * Unsafe.SizeOf<T>();
            long available = context.MemoryLimit;
            if (bytes > available)
                throw new ArgumentException($"shape {FormatShape(dims)} needs {bytes} bytes; {context.Description} holds at most {available}.", "shape");
        }

        /// <summary>The element count of a shape filled from the host, which must fit one .NET array.</summary>
        private static int CheckHostLength(int[] dims)
        {
            long length = CheckShape(dims, "shape");
            if (length > Array.MaxLength)
                throw new ArgumentException($"shape {FormatShape(dims)} has {length} elements, more than a host array holds ({Array.MaxLength}).", "shape");
            return (int)length;
        }
    }

    /// <summary>The storage a tensor and its views share: whether it was freed, and how often it was written.</summary>
    internal sealed class TensorStorage
    {
        private long version;

        public volatile bool IsDisposed;

        public long Version => Interlocked.Read(ref version);

        public void MarkWritten() => Interlocked.Increment(ref version);

        /// <summary>For a log-sum-exp's storage: the inputs of the forward that wrote it last.</summary>
        public ForwardRecord? LastForward { get; set; }
    }

    /// <summary>
    /// What one forward read (query, key, value, bias tensor) and wrote (output, log-sum-exp), each at its version then, and
    /// the dropout it applied.
    /// </summary>
    internal sealed record ForwardRecord(
        TensorStamp Query, TensorStamp Key, TensorStamp Value, TensorStamp? Bias, TensorStamp Output, TensorStamp Lse, AttentionDropout Dropout);

    /// <summary>What a tensor read at one moment: its storage, the byte offset and length of its region, and the storage's version.</summary>
    internal readonly record struct TensorStamp(TensorStorage Storage, long Offset, long Length, long Version)
    {
        public bool SameRegion(TensorStamp other) => ReferenceEquals(Storage, other.Storage) && Offset == other.Offset && Length == other.Length;
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
