using System;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// LayerNorm over the last dimension of the fp32 residual stream, as autocast runs it: statistics and
    /// affine transform in fp32 from the fp32 master weight and bias, output rounded to the compute type
    /// for the next matrix product. The forward can copy its input into the next residual
    /// buffer (the projection after it adds into that copy with β = 1). The backward adds dx into the fp32
    /// residual gradient, writes its compute-type copy for the next product, and sums dy·x̂ | dy over rows into
    /// partial rows whose column sums (one GEMM with a ones vector) are dweight | dbias.
    /// On a GPU each row is one warp reading 8 channels a lane per load (<see cref="Float8"/>) when the channels are a
    /// multiple of 8, one a lane otherwise; shuffle reductions. The backward's warps keep their dy·x̂ | dy sums in shared
    /// memory over several rows and write one partial row per group. The host loops run the one-thread-per-row twins
    /// (one partial row per row).
    /// </summary>
    internal static class LayerNorm
    {
        public const float Epsilon = 1e-5f;

        /// <summary>Warps of a backward group on a GPU (fewer when their partial sums would not fit in 48 KB of shared memory).</summary>
        public const int BackwardWarps = 4;

        /// <summary>Rows each warp of a backward group takes: the group writes one partial row per BackwardWarps · RowsPerWarp rows.</summary>
        public const int RowsPerWarp = 4;

        private const int SharedBytes = 48 * 1024;

        public struct ForwardArgs<T>
            where T : unmanaged
        {
            public ArrayView<float> X;
            public ArrayView<float> Weight;
            public ArrayView<float> Bias;
            public ArrayView<T> Y;
            public ArrayView<float> Mean;
            public ArrayView<float> Rstd;
            public ArrayView<float> Copy;
            public int Channels;
            public int HasCopy;
            public int Rows;

            /// <summary>Channels a multiple of 8 and every view on a <see cref="Pack8{T}"/> boundary: whole rows as <see cref="Float8"/>.</summary>
            public int Aligned;
        }

        public struct BackwardArgs<T>
            where T : unmanaged
        {
            public ArrayView<T> dY;
            public ArrayView<float> X;
            public ArrayView<float> Weight;
            public ArrayView<float> Mean;
            public ArrayView<float> Rstd;
            public ArrayView<float> dX;
            public ArrayView<T> dXCompute;
            public ArrayView<float> ParamRows;
            public int Channels;
            public int Accumulate;
            public int Rows;

            /// <summary>Channels a multiple of 8 and every view (ParamRows too) on a <see cref="Pack8{T}"/> boundary.</summary>
            public int Aligned;
        }

        /// <summary>The forward for one row, its lanes striding over the channels (8 at a time when aligned).</summary>
        private static void ForwardRow<T, TConvert, TReduce>(in ForwardArgs<T> a, int row, int lane, int width)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
            where TReduce : struct, IRowReduce
        {
            int c = a.Channels;
            long start = (long)row * c;
            long rowVector = start / Float8.Width;
            int vectors = a.Aligned != 0 ? c / Float8.Width : 0;
            int scalars = vectors * Float8.Width;
            float sum = 0f;
            for (int q = lane; q < vectors; q += width)
                sum += Float8.Load(a.X, rowVector + q).Sum();
            for (int j = scalars + lane; j < c; j += width)
                sum += a.X[start + j];
            float mean = default(TReduce).Sum(sum) / c;
            float squares = 0f;
            for (int q = lane; q < vectors; q += width)
                squares += CenteredSquares(Float8.Load(a.X, rowVector + q), mean);
            for (int j = scalars + lane; j < c; j += width)
            {
                float centered = a.X[start + j] - mean;
                squares += centered * centered;
            }
            float rstd = 1f / MathF.Sqrt(default(TReduce).Sum(squares) / c + Epsilon);
            for (int q = lane; q < vectors; q += width)
            {
                var x = Float8.Load(a.X, rowVector + q);
                Normalize(x, mean, rstd, Float8.Load(a.Weight, q), Float8.Load(a.Bias, q)).Store<T, TConvert>(a.Y, rowVector + q);
                if (a.HasCopy != 0)
                    x.Store(a.Copy, rowVector + q);
            }
            for (int j = scalars + lane; j < c; j += width)
            {
                float x = a.X[start + j];
                a.Y[start + j] = default(TConvert).FromFloat(Normalize(x, mean, rstd, a.Weight[j], a.Bias[j]));
                if (a.HasCopy != 0)
                    a.Copy[start + j] = x;
            }
            if (lane == 0)
            {
                a.Mean[row] = mean;
                a.Rstd[row] = rstd;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Normalize(float x, float mean, float rstd, float weight, float bias) => (x - mean) * rstd * weight + bias;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Float8 Normalize(in Float8 x, float mean, float rstd, in Float8 w, in Float8 b) => new()
        {
            E0 = Normalize(x.E0, mean, rstd, w.E0, b.E0), E1 = Normalize(x.E1, mean, rstd, w.E1, b.E1),
            E2 = Normalize(x.E2, mean, rstd, w.E2, b.E2), E3 = Normalize(x.E3, mean, rstd, w.E3, b.E3),
            E4 = Normalize(x.E4, mean, rstd, w.E4, b.E4), E5 = Normalize(x.E5, mean, rstd, w.E5, b.E5),
            E6 = Normalize(x.E6, mean, rstd, w.E6, b.E6), E7 = Normalize(x.E7, mean, rstd, w.E7, b.E7),
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float CenteredSquares(in Float8 x, float mean)
        {
            float d0 = x.E0 - mean, d1 = x.E1 - mean, d2 = x.E2 - mean, d3 = x.E3 - mean;
            float d4 = x.E4 - mean, d5 = x.E5 - mean, d6 = x.E6 - mean, d7 = x.E7 - mean;
            return ((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)) + ((d4 * d4 + d5 * d5) + (d6 * d6 + d7 * d7));
        }

        /// <summary>
        /// The backward for one row: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·weight; dX (+)= dx,
        /// dXCompute = dX rounded; [dy·x̂ | dy] stored or added (<typeparamref name="TParams"/>) into
        /// <paramref name="paramRow"/> (2·channels floats).
        /// </summary>
        private static void BackwardRow<T, TConvert, TReduce, TParams>(in BackwardArgs<T> a, int row, int lane, int width, ArrayView<float> paramRow)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
            where TReduce : struct, IRowReduce
            where TParams : struct, IParamRow
        {
            int c = a.Channels;
            long start = (long)row * c;
            long rowVector = start / Float8.Width;
            int vectors = a.Aligned != 0 ? c / Float8.Width : 0;
            int scalars = vectors * Float8.Width;
            float mean = a.Mean[row];
            float rstd = a.Rstd[row];
            float gMean = 0f;
            float gxMean = 0f;
            for (int q = lane; q < vectors; q += width)
            {
                var dy = Float8.Load<T, TConvert>(a.dY, rowVector + q);
                var xhat = Normalized(Float8.Load(a.X, rowVector + q), mean, rstd);
                var g = Product(dy, Float8.Load(a.Weight, q));
                gMean += g.Sum();
                gxMean += Product(g, xhat).Sum();
                default(TParams).Put(paramRow, q, Product(dy, xhat));
                default(TParams).Put(paramRow, vectors + q, dy);
            }
            for (int j = scalars + lane; j < c; j += width)
            {
                float dy = default(TConvert).ToFloat(a.dY[start + j]);
                float xhat = (a.X[start + j] - mean) * rstd;
                float g = dy * a.Weight[j];
                gMean += g;
                gxMean += g * xhat;
                default(TParams).Put(paramRow, j, dy * xhat);
                default(TParams).Put(paramRow, c + j, dy);
            }
            gMean = default(TReduce).Sum(gMean) / c;
            gxMean = default(TReduce).Sum(gxMean) / c;
            for (int q = lane; q < vectors; q += width)
            {
                var dy = Float8.Load<T, TConvert>(a.dY, rowVector + q);
                var xhat = Normalized(Float8.Load(a.X, rowVector + q), mean, rstd);
                var dx = InputGradient(dy, Float8.Load(a.Weight, q), xhat, rstd, gMean, gxMean);
                if (a.Accumulate != 0)
                    dx = Float8.Load(a.dX, rowVector + q) + dx;
                dx.Store(a.dX, rowVector + q);
                dx.Store<T, TConvert>(a.dXCompute, rowVector + q);
            }
            for (int j = scalars + lane; j < c; j += width)
            {
                float dy = default(TConvert).ToFloat(a.dY[start + j]);
                float xhat = (a.X[start + j] - mean) * rstd;
                float dx = InputGradient(dy, a.Weight[j], xhat, rstd, gMean, gxMean);
                float total = a.Accumulate != 0 ? a.dX[start + j] + dx : dx;
                a.dX[start + j] = total;
                a.dXCompute[start + j] = default(TConvert).FromFloat(total);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float InputGradient(float dy, float weight, float xhat, float rstd, float gMean, float gxMean) =>
            rstd * (dy * weight - gMean - xhat * gxMean);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Float8 InputGradient(in Float8 dy, in Float8 w, in Float8 xhat, float rstd, float gMean, float gxMean) => new()
        {
            E0 = InputGradient(dy.E0, w.E0, xhat.E0, rstd, gMean, gxMean), E1 = InputGradient(dy.E1, w.E1, xhat.E1, rstd, gMean, gxMean),
            E2 = InputGradient(dy.E2, w.E2, xhat.E2, rstd, gMean, gxMean), E3 = InputGradient(dy.E3, w.E3, xhat.E3, rstd, gMean, gxMean),
            E4 = InputGradient(dy.E4, w.E4, xhat.E4, rstd, gMean, gxMean), E5 = InputGradient(dy.E5, w.E5, xhat.E5, rstd, gMean, gxMean),
            E6 = InputGradient(dy.E6, w.E6, xhat.E6, rstd, gMean, gxMean), E7 = InputGradient(dy.E7, w.E7, xhat.E7, rstd, gMean, gxMean),
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Float8 Normalized(in Float8 x, float mean, float rstd) => new()
        {
            E0 = (x.E0 - mean) * rstd, E1 = (x.E1 - mean) * rstd, E2 = (x.E2 - mean) * rstd, E3 = (x.E3 - mean) * rstd,
            E4 = (x.E4 - mean) * rstd, E5 = (x.E5 - mean) * rstd, E6 = (x.E6 - mean) * rstd, E7 = (x.E7 - mean) * rstd,
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Float8 Product(in Float8 a, in Float8 b) => new()
        {
            E0 = a.E0 * b.E0, E1 = a.E1 * b.E1, E2 = a.E2 * b.E2, E3 = a.E3 * b.E3,
            E4 = a.E4 * b.E4, E5 = a.E5 * b.E5, E6 = a.E6 * b.E6, E7 = a.E7 * b.E7,
        };

        /// <summary>How a row's dy·x̂ | dy reaches its partial row: stored (a row of its own) or added (a warp's running sum).</summary>
        private interface IParamRow
        {
            void Put(ArrayView<float> paramRow, int index, float value);

            void Put(ArrayView<float> paramRow, int vector, in Float8 values);
        }

        private struct StoreParams : IParamRow
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public void Put(ArrayView<float> paramRow, int index, float value) => paramRow[index] = value;

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public void Put(ArrayView<float> paramRow, int vector, in Float8 values) => values.Store(paramRow, vector);
        }

        private struct AddParams : IParamRow
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public void Put(ArrayView<float> paramRow, int index, float value) => paramRow[index] += value;

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public void Put(ArrayView<float> paramRow, int vector, in Float8 values) => (Float8.Load(paramRow, vector) + values).Store(paramRow, vector);
        }

        /// <summary>Forward, one thread per row (host loops).</summary>
        public static void ForwardKernel<T, TConvert>(Index1D row, ForwardArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T> =>
            ForwardRow<T, TConvert, SingleLane>(a, row, 0, 1);

        /// <summary>Forward, one warp per row (GPU).</summary>
        public static void ForwardRowsKernel<T, TConvert>(ForwardArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int row = RowLaunch.WarpRow();
            if (row < a.Rows)
                ForwardRow<T, TConvert, WarpReduce>(a, row, Warp.LaneIdx, Warp.WarpSize);
        }

        /// <summary>Backward, one thread per row, a partial row each (host loops).</summary>
        public static void BackwardKernel<T, TConvert>(Index1D row, BackwardArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T> =>
            BackwardRow<T, TConvert, SingleLane, StoreParams>(a, row, 0, 1, a.ParamRows.SubView(2L * row * a.Channels, 2 * a.Channels));

        /// <summary>Backward, one warp per row, a partial row each (GPU, when a group's sums do not fit in shared memory).</summary>
        public static void BackwardRowsKernel<T, TConvert>(BackwardArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int row = RowLaunch.WarpRow();
            if (row < a.Rows)
                BackwardRow<T, TConvert, WarpReduce, StoreParams>(a, row, Warp.LaneIdx, Warp.WarpSize, a.ParamRows.SubView(2L * row * a.Channels, 2 * a.Channels));
        }

        /// <summary>
        /// Backward, one warp per row, <see cref="RowsPerWarp"/> rows a warp (GPU). Each warp adds its rows' dy·x̂ | dy into
        /// its own 2·channels floats of dynamic shared memory; after a barrier the group sums its warps' rows in warp order
        /// into ParamRows[group]: the order of every fp32 sum is fixed by the shape, so the result is deterministic.
        /// </summary>
        public static void BackwardGroupsKernel<T, TConvert>(BackwardArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int width = 2 * a.Channels;
            int warps = Group.DimX / Warp.WarpSize;
            var sums = SharedMemory.GetDynamic<float>();
            for (int t = Group.IdxX; t < warps * width; t += Group.DimX)
                sums[t] = 0f;
            Group.Barrier();
            var mine = sums.SubView(Warp.WarpIdx * width, width);
            for (int i = 0; i < RowsPerWarp; i++)
            {
                int row = (Grid.IdxX * RowsPerWarp + i) * warps + Warp.WarpIdx;
                if (row < a.Rows)
                    BackwardRow<T, TConvert, WarpReduce, AddParams>(a, row, Warp.LaneIdx, Warp.WarpSize, mine);
            }
            Group.Barrier();
            for (int t = Group.IdxX; t < width; t += Group.DimX)
            {
                float sum = 0f;
                for (int w = 0; w < warps; w++)
                    sum += sums[w * width + t];
                a.ParamRows[(long)Grid.IdxX * width + t] = sum;
            }
        }

        /// <summary>Forward over <paramref name="rows"/> rows; <paramref name="copy"/> (may be empty) receives x.</summary>
        public static void Forward<T, TConvert>(
            DeviceLauncher launcher, int rows, int channels, ArrayView<float> x, ArrayView<float> weightAndBias,
            ArrayView<T> y, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> copy)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            var args = new ForwardArgs<T>
            {
                X = x,
                Weight = weightAndBias.SubView(0, channels),
                Bias = weightAndBias.SubView(channels, channels),
                Y = y,
                Mean = mean,
                Rstd = rstd,
                Copy = copy,
                Channels = channels,
                HasCopy = copy.Length > 0 ? 1 : 0,
                Rows = rows,
            };
            args.Aligned = channels % Float8.Width == 0 && Wide.IsAligned(x) && Wide.IsAligned(args.Weight) && Wide.IsAligned(args.Bias)
                && Wide.IsAligned(y) && Wide.IsAligned(copy) ? 1 : 0;
            RowLaunch.Launch(launcher, ForwardKernel<T, TConvert>, ForwardRowsKernel<T, TConvert>, rows, args);
        }

        /// <summary>
        /// Backward: dX (+)= dx and dXCompute = dX in the compute type; the [dweight | dbias] gradient
        /// (2·channels floats) is overwritten. <paramref name="paramRows"/> is scratch of rows × 2·channels (the GPU
        /// uses its first rows / (BackwardWarps · RowsPerWarp)), <paramref name="onesRows"/> a vector of at least
        /// <paramref name="rows"/> ones.
        /// </summary>
        public static void Backward<T, TConvert>(
            DeviceLauncher launcher, Gemm gemm, int rows, int channels, ArrayView<T> dy, ArrayView<float> x,
            ArrayView<float> weightAndBias, ArrayView<float> mean, ArrayView<float> rstd,
            ArrayView<float> dx, ArrayView<T> dxCompute, bool accumulate,
            ArrayView<float> gradWeightAndBias, ArrayView<float> paramRows, ArrayView<float> onesRows)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            var args = new BackwardArgs<T>
            {
                dY = dy,
                X = x,
                Weight = weightAndBias.SubView(0, channels),
                Mean = mean,
                Rstd = rstd,
                dX = dx,
                dXCompute = dxCompute,
                ParamRows = paramRows,
                Channels = channels,
                Accumulate = accumulate ? 1 : 0,
                Rows = rows,
            };
            args.Aligned = channels % Float8.Width == 0 && Wide.IsAligned(dy) && Wide.IsAligned(x) && Wide.IsAligned(args.Weight)
                && Wide.IsAligned(dx) && Wide.IsAligned(dxCompute) && Wide.IsAligned(paramRows) ? 1 : 0;
            int warps = Math.Min(BackwardWarps, SharedBytes / (2 * channels * sizeof(float)));
            int partialRows = rows;
            if (launcher.RunsOnHost)
            {
                launcher.Launch(BackwardKernel<T, TConvert>, rows, args);
            }
            else if (warps == 0)
            {
                launcher.LaunchGrouped(BackwardRowsKernel<T, TConvert>, (rows + RowLaunch.RowsPerGroup - 1) / RowLaunch.RowsPerGroup,
                    RowLaunch.RowsPerGroup * launcher.Accelerator.WarpSize, args);
            }
            else
            {
                int rowsPerGroup = warps * RowsPerWarp;
                partialRows = (rows + rowsPerGroup - 1) / rowsPerGroup;
                launcher.LaunchGrouped(BackwardGroupsKernel<T, TConvert>, partialRows, warps * launcher.Accelerator.WarpSize,
                    SharedMemoryConfig.RequestDynamic<float>(warps * 2 * channels), args);
            }
            gemm.Run<float, FloatConvert, float, FloatConvert>(
                false, false, 1, 2 * channels, partialRows, 1f, onesRows, partialRows, paramRows, 2 * channels, 0f, gradWeightAndBias, 2 * channels);
        }
    }
}
