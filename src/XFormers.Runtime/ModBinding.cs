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
        private readonly (Tensor<int>? Tensor, int Rank, string Field)[] intTables = new (Tensor<int>?, int, string)[ModArgs.Tables];
        private readonly (Tensor<float>? Tensor, int Rank, string Field)[] floatTables = new (Tensor<float>?, int, string)[ModArgs.Tables];

        public ModBinding(Type argsType) => ArgsType = argsType ?? throw new ArgumentNullException(nameof(argsType));

        /// <summary>The user's argument struct.</summary>
        public Type ArgsType { get; }

        public void Int(int slot, int value) => ints[slot] = value;

        public void Float(int slot, float value) => floats[slot] = value;

        public void IntTable(int slot, Tensor<int>? table, int rank, string field) => intTables[slot] = (table, rank, field);

        public void FloatTable(int slot, Tensor<float>? table, int rank, string field) => floatTables[slot] = (table, rank, field);
    }
}
