using System;
using System.Collections.Generic;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>One named parameter: a slice of the flat buffers.</summary>
    public sealed record ParameterSlice(string Name, int[] Shape, long Offset)
    {
        public long Length => Shape.Aggregate(1L, (a, d) => a * d);

        public override string ToString() => $"{Name} [{string.Join(", ", Shape)}]";
    }

    /// <summary>
    /// One parameter tensor resolved into a <see cref="ParameterStore{T}"/>'s flat buffers: its fp32 master weights,
    /// its fp32 gradient and the compute-type copy the matrix products read.
    /// </summary>
    public readonly struct Parameter<T>
        where T : unmanaged
    {
        internal Parameter(ParameterSlice slice, ArrayView<float> value, ArrayView<float> grad, ArrayView<T> weight)
        {
            Slice = slice;
            Value = value;
            Grad = grad;
            Weight = weight;
        }

        public ParameterSlice Slice { get; }

        public ArrayView<float> Value { get; }

        public ArrayView<float> Grad { get; }

        public ArrayView<T> Weight { get; }

        public override string ToString() => Slice.ToString();
    }

    /// <summary>
    /// All parameters of a model in flat device buffers, llm.c style: fp32 master weights, their fp32
    /// gradients, AdamW's first and second moments, and the copy in the compute type <typeparamref name="T"/>
    /// that the matrix products read (refreshed by the optimizer). Slices are laid out in the order given,
    /// which is the PyTorch state_dict order.
    /// </summary>
    public sealed class ParameterStore<T> : IDisposable
        where T : unmanaged
    {
        private readonly Dictionary<string, ParameterSlice> byName;
        private readonly MemoryBuffer1D<float, Stride1D.Dense> buffer;
        private readonly MemoryBuffer1D<T, Stride1D.Dense> compute;

        public ParameterStore(XFormersContext context, IEnumerable<(string Name, int[] Shape)> layout)
        {
            ArgumentNullException.ThrowIfNull(context);
            ArgumentNullException.ThrowIfNull(layout);
            var slices = new List<ParameterSlice>();
            long offset = 0;
            foreach (var (name, shape) in layout)
            {
                var slice = new ParameterSlice(name, (int[])shape.Clone(), offset);
                slices.Add(slice);
                offset += slice.Length;
            }
            Slices = slices;
            byName = slices.ToDictionary(s => s.Name);
            Count = offset;
            Context = context;
            buffer = context.Accelerator.Allocate1D<float>(4 * offset);
            buffer.MemSetToZero();
            compute = context.Accelerator.Allocate1D<T>(offset);
        }

        public XFormersContext Context { get; }

        public IReadOnlyList<ParameterSlice> Slices { get; }

        /// <summary>Number of scalar parameters.</summary>
        public long Count { get; }

        public ArrayView<float> Params => buffer.View.SubView(0, Count);

        public ArrayView<float> Grads => buffer.View.SubView(Count, Count);

        public ArrayView<float> M => buffer.View.SubView(2 * Count, Count);

        public ArrayView<float> V => buffer.View.SubView(3 * Count, Count);

        public ArrayView<T> Compute => compute.View;

        /// <summary>The parameter named <paramref name="name"/>, resolved once by the model that owns it (never in a step).</summary>
        public Parameter<T> this[string name]
        {
            get
            {
                var slice = byName.TryGetValue(name, out var found) ? found : throw new KeyNotFoundException($"no parameter named '{name}'.");
                return new(slice, Slice(Params, slice), Slice(Grads, slice), Slice(Compute, slice));
            }
        }

        private static ArrayView<TElement> Slice<TElement>(ArrayView<TElement> view, ParameterSlice slice)
            where TElement : unmanaged => view.SubView(slice.Offset, slice.Length);

        /// <summary>Copies one flat buffer (params, grads, m or v) to the host.</summary>
        public float[] Read(ArrayView<float> flat)
        {
            Context.Synchronize();
            var host = new float[flat.Length];
            flat.CopyToCPU(host);
            return host;
        }

        /// <summary>Overwrites one flat buffer from the host.</summary>
        public void Write(ArrayView<float> flat, float[] values)
        {
            ArgumentNullException.ThrowIfNull(values);
            if (values.LongLength != flat.Length)
                throw new ArgumentException($"{values.LongLength} values for a buffer of {flat.Length}.", nameof(values));
            flat.CopyFromCPU(values);
        }

        /// <summary>
        /// Sets the master weights and rounds their compute copy with the same kernel code the optimizer uses, on
        /// the device, so a loaded checkpoint continues exactly where the saved run was.
        /// </summary>
        public void Load<TConvert>(DeviceLauncher launcher, float[] parameters)
            where TConvert : struct, IElementConvert<T>
        {
            ArgumentNullException.ThrowIfNull(launcher);
            Write(Params, parameters);
            launcher.Launch(RoundKernel<TConvert>, Count, new RoundArgs { Params = Params, Compute = Compute });
        }

        internal struct RoundArgs
        {
            public ArrayView<float> Params;
            public ArrayView<T> Compute;
        }

        internal static void RoundKernel<TConvert>(Index1D i, RoundArgs a)
            where TConvert : struct, IElementConvert<T> =>
            a.Compute[i] = default(TConvert).FromFloat(a.Params[i]);

        public void Dispose()
        {
            buffer.Dispose();
            compute.Dispose();
        }
    }
}
