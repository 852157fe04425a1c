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

    /// <summary>
    /// A row owned by a whole group (up to <see cref="MaxWarps"/> warps): each warp reduces with shuffles, lane 0 of each
    /// leaves its result in shared memory, and after a barrier every thread combines the warps' results in warp order, so
    /// all threads return the same value and the order of the fp32 sums is fixed. A second barrier lets the next
    /// reduction reuse the shared slots. Every thread of the group must call it.
    /// </summary>
    internal struct GroupReduce : IRowReduce
    {
        /// <summary>Warps a group may have (1024 threads of 32 lanes; 128 threads of 4 lanes on the CPU accelerator).</summary>
        public const int MaxWarps = 32;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Sum(float value)
        {
            var partial = SharedMemory.Allocate<float>(MaxWarps);
            value = default(WarpReduce).Sum(value);
            if (Warp.IsFirstLane)
                partial[Warp.WarpIdx] = value;
            Group.Barrier();
            float sum = 0f;
            int warps = Group.DimX / Warp.WarpSize;
            for (int w = 0; w < warps; w++)
                sum += partial[w];
            Group.Barrier();
            return sum;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void MaxWithIndex(ref float max, ref int index)
        {
            var maxes = SharedMemory.Allocate<float>(MaxWarps);
            var indices = SharedMemory.Allocate<int>(MaxWarps);
            default(WarpReduce).MaxWithIndex(ref max, ref index);
            if (Warp.IsFirstLane)
            {
                maxes[Warp.WarpIdx] = max;
                indices[Warp.WarpIdx] = index;
            }
            Group.Barrier();
            max = maxes[0];
            index = indices[0];
            int warps = Group.DimX / Warp.WarpSize;
            for (int w = 1; w < warps; w++)
            {
                float otherMax = maxes[w];
                int otherIndex = indices[w];
                if (otherMax > max || (otherMax == max && otherIndex < index))
                {
                    max = otherMax;
                    index = otherIndex;
                }
            }
            Group.Barrier();
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
