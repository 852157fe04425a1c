using System.Runtime.CompilerServices;
using ILGPU;

namespace XFormers.Training
{
    /// <summary>
    /// How the lanes that share a row combine their partial results. Row kernels are written once over
    /// (lane, width): on a GPU a warp owns a row (<see cref="WarpReduce"/>, shuffles); in host loops one thread
    /// owns it (<see cref="SingleLane"/>, lane 0 of width 1, nothing to combine).
    /// </summary>
    internal interface IRowReduce
    {
        /// <summary>The sum over the row's lanes, on every lane.</summary>
        float Sum(float value);

        /// <summary>The largest value over the lanes and its index; ties go to the smaller index.</summary>
        void MaxWithIndex(ref float max, ref int index);
    }

    internal struct SingleLane : IRowReduce
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Sum(float value) => value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void MaxWithIndex(ref float max, ref int index)
        {
        }
    }

    internal struct WarpReduce : IRowReduce
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Sum(float value)
        {
            for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
                value += Warp.ShuffleXor(value, mask);
            return value;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void MaxWithIndex(ref float max, ref int index)
        {
            for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
            {
                float otherMax = Warp.ShuffleXor(max, mask);
                int otherIndex = Warp.ShuffleXor(index, mask);
                if (otherMax > max || (otherMax == max && otherIndex < index))
                {
                    max = otherMax;
                    index = otherIndex;
                }
            }
        }
    }

    /// <summary>Launch helpers for kernels that give each row one warp.</summary>
    internal static class RowLaunch
    {
        /// <summary>Rows per group of a warp-per-row launch.</summary>
        public const int RowsPerGroup = 4;

        /// <summary>The row of the calling warp: rows are numbered group by group, warp by warp.</summary>
        public static int WarpRow() => Grid.IdxX * (Group.DimX / Warp.WarpSize) + Warp.WarpIdx;

        /// <summary>Runs a row body over <paramref name="rows"/> rows: host loop (one thread per row) or one warp per row.</summary>
        public static void Launch<TArgs>(DeviceLauncher launcher, System.Action<Index1D, TArgs> rowKernel, System.Action<TArgs> warpKernel, int rows, TArgs args)
            where TArgs : struct
        {
            if (launcher.RunsOnHost)
                launcher.Launch(rowKernel, rows, args);
            else
                launcher.LaunchGrouped(warpKernel, (rows + RowsPerGroup - 1) / RowsPerGroup, RowsPerGroup * launcher.Accelerator.WarpSize, args);
        }
    }
}
