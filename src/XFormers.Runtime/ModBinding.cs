using System;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>Binds a variant's mod arguments: made by the generated <c>BindMods</c> from the user's <c>TArgs</c> value.</summary>
    public delegate ModBinding ModBinder<TArgs>(in TArgs args) where TArgs : struct;

    /// <summary>
    /// The run-time arguments of a variant's score and mask mods, as the generator assigned their slots (see
    /// <see cref="ModArgs"/>): scalars by value, tables as tensors checked at each launch (alive, on the call's context,
    /// of the rank the mods index them with).
    /// </summary>
    public sealed class ModBinding
    {
        private readonly int[] ints = new int[ModArgs.Scalars];
        private readonly float[] floats = new float[ModArgs.Scalars];
        private readonly Table<int>[] intTables = new Table<int>[ModArgs.Tables];
        private readonly Table<float>[] floatTables = new Table<float>[ModArgs.Tables];

        private readonly record struct Table<T>(Tensor<T>? Tensor, int Rank, string Field) where T : unmanaged;

        public ModBinding(Type argsType) => ArgsType = argsType ?? throw new ArgumentNullException(nameof(argsType));

        /// <summary>The user's argument struct.</summary>
        public Type ArgsType { get; }

        public void Int(int slot, int value) => ints[slot] = value;

        public void Float(int slot, float value) => floats[slot] = value;

        public void IntTable(int slot, Tensor<int>? table, int rank, string field) => intTables[slot] = new(table, rank, field);

        public void FloatTable(int slot, Tensor<float>? table, int rank, string field) => floatTables[slot] = new(table, rank, field);

        /// <summary>
        /// The arguments as the kernels read them, after checking every table: set, alive, on <paramref name="context"/>, and
        /// of the rank the mods index it with. Throws naming the field, before any launch.
        /// </summary>
        internal ModArgs ToKernelArgs(XFormersContext context)
        {
            var m = new ModArgs
            {
                Int0 = ints[0], Int1 = ints[1], Int2 = ints[2], Int3 = ints[3], Int4 = ints[4], Int5 = ints[5], Int6 = ints[6], Int7 = ints[7],
                Float0 = floats[0], Float1 = floats[1], Float2 = floats[2], Float3 = floats[3],
                Float4 = floats[4], Float5 = floats[5], Float6 = floats[6], Float7 = floats[7],
            };
            for (int slot = 0; slot < ModArgs.Tables; slot++)
            {
                if (intTables[slot].Field is not null)
                {
                    var (view, s0, s1) = Check(intTables[slot], context);
                    switch (slot)
                    {
                        case 0: m.IntTable0 = view; m.IntTable0Stride0 = s0; m.IntTable0Stride1 = s1; break;
                        case 1: m.IntTable1 = view; m.IntTable1Stride0 = s0; m.IntTable1Stride1 = s1; break;
                        case 2: m.IntTable2 = view; m.IntTable2Stride0 = s0; m.IntTable2Stride1 = s1; break;
                        default: m.IntTable3 = view; m.IntTable3Stride0 = s0; m.IntTable3Stride1 = s1; break;
                    }
                }
                if (floatTables[slot].Field is not null)
                {
                    var (view, s0, s1) = Check(floatTables[slot], context);
                    switch (slot)
                    {
                        case 0: m.FloatTable0 = view; m.FloatTable0Stride0 = s0; m.FloatTable0Stride1 = s1; break;
                        case 1: m.FloatTable1 = view; m.FloatTable1Stride0 = s0; m.FloatTable1Stride1 = s1; break;
                        case 2: m.FloatTable2 = view; m.FloatTable2Stride0 = s0; m.FloatTable2Stride1 = s1; break;
                        default: m.FloatTable3 = view; m.FloatTable3Stride0 = s0; m.FloatTable3Stride1 = s1; break;
                    }
                }
            }
            return m;
        }

        /// <summary>
        /// What identifies the arguments' values for a cached block mask: the scalars, and each table's storage, region and
        /// version (a write to a table bumps its version, so a stale block mask is never reused).
        /// </summary>
        internal Key Identity()
        {
            var stamps = new TensorStamp?[2 * ModArgs.Tables];
            for (int i = 0; i < ModArgs.Tables; i++)
            {
                stamps[i] = intTables[i].Tensor?.Stamp();
                stamps[ModArgs.Tables + i] = floatTables[i].Tensor?.Stamp();
            }
            return new Key((int[])ints.Clone(), Array.ConvertAll(floats, BitConverter.SingleToInt32Bits), stamps);
        }

        /// <summary>A binding's identity (<see cref="Identity"/>), compared element by element.</summary>
        internal sealed class Key : IEquatable<Key>
        {
            private readonly int[] ints;
            private readonly int[] floatBits;
            private readonly TensorStamp?[] stamps;

            public Key(int[] ints, int[] floatBits, TensorStamp?[] stamps)
            {
                this.ints = ints;
                this.floatBits = floatBits;
                this.stamps = stamps;
            }

            public bool Equals(Key? other) =>
                other is not null && ints.AsSpan().SequenceEqual(other.ints) && floatBits.AsSpan().SequenceEqual(other.floatBits)
                && System.Linq.Enumerable.SequenceEqual(stamps, other.stamps);

            public override bool Equals(object? obj) => Equals(obj as Key);

            public override int GetHashCode()
            {
                var hash = new HashCode();
                foreach (var i in ints)
                    hash.Add(i);
                foreach (var f in floatBits)
                    hash.Add(f);
                foreach (var s in stamps)
                    hash.Add(s);
                return hash.ToHashCode();
            }
        }

        private (ILGPU.ArrayView<T> View, long Stride0, long Stride1) Check<T>(Table<T> table, XFormersContext context)
            where T : unmanaged
        {
            string name = $"args.{table.Field}";
            if (table.Tensor is not { } tensor)
                throw new ArgumentException($"{name}: the mods read this {typeof(T).Name} table, but it is null; set it before the call.", "args");
            if (tensor.IsDisposed)
                throw new ObjectDisposedException(name, $"{name} ({tensor}) was disposed.");
            if (!ReferenceEquals(tensor.Context, context))
                throw new ArgumentException($"{name}: {tensor} lives on another XFormersContext than the attention inputs.", "args");
            if (tensor.Rank != table.Rank)
                throw new ArgumentException($"{name}: the mods index it with {table.Rank} indices, but {tensor} has rank {tensor.Rank}.", "args");
            var shape = tensor.Shape;
            long stride0 = table.Rank switch { 2 => shape[1], 3 => (long)shape[1] * shape[2], _ => 1 };
            long stride1 = table.Rank == 3 ? shape[2] : 1;
            return (tensor.View, stride0, stride1);
        }
    }
}
