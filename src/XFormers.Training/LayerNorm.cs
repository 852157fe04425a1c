using System;
using ILGPU;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// LayerNorm over the last dimension of the fp32 residual stream, as autocast runs it: statistics and
    /// affine transform in fp32 from the fp32 master weight and bias, output rounded to the compute type
    /// for the next matrix product. One thread per row. The forward can copy its input into the next residual
    /// buffer (the projection after it adds into that copy with β = 1). The backward adds dx into the fp32
    /// residual gradient, writes its compute-type copy for the next product, and leaves per-row
    /// dy·x̂ | dy in a scratch matrix whose column sums (one GEMM with a ones vector) are dweight | dbias.
    /// On a GPU each row is one warp (strided, coalesced loads; shuffle reductions); the host loops run the
    /// one-thread-per-row twins.
    /// </summary>
    internal static class LayerNorm
    {
        public const float Epsilon = 1e-5f;

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
        }

        /// <summary>The forward for one row, its lanes striding over the channels.</summary>
        private static void ForwardRow<T, TConvert, TReduce>(in ForwardArgs<T> a, int row, int lane, int width)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
            where TReduce : struct, IRowReduce
        {
            int c = a.Channels;
            long start = (long)row * c;
            float sum = 0f;
            for (int j = lane; j < c; j += width)
                sum += a.X[start + j];
            float mean = default(TReduce).Sum(sum) / c;
            float squares = 0f;
            for (int j = lane; j < c; j += width)
            {
                float centered = a.X[start + j] - mean;
                squares += centered * centered;
            }
            float rstd = 1f / MathF.Sqrt(default(TReduce).Sum(squares) / c + Epsilon);
            for (int j = lane; j < c; j += width)
            {
                float x = a.X[start + j];
                a.Y[start + j] = default(TConvert).FromFloat((x - mean) * rstd * a.Weight[j] + a.Bias[j]);
                if (a.HasCopy != 0)
                    a.Copy[start + j] = x;
            }
            if (lane == 0)
            {
                a.Mean[row] = mean;
                a.Rstd[row] = rstd;
            }
        }

        /// <summary>
        /// The backward for one row: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·weight; dX (+)= dx,
        /// dXCompute = dX rounded; ParamRows[row] = [dy·x̂ | dy].
        /// </summary>
        private static void BackwardRow<T, TConvert, TReduce>(in BackwardArgs<T> a, int row, int lane, int width)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
            where TReduce : struct, IRowReduce
        {
            int c = a.Channels;
            long start = (long)row * c;
            float mean = a.Mean[row];
            float rstd = a.Rstd[row];
            float gMean = 0f;
            float gxMean = 0f;
            for (int j = lane; j < c; j += width)
            {
                float dy = default(TConvert).ToFloat(a.dY[start + j]);
                float xhat = (a.X[start + j] - mean) * rstd;
                float g = dy * a.Weight[j];
                gMean += g;
                gxMean += g * xhat;
                a.ParamRows[2 * start + j] = dy * xhat;
                a.ParamRows[2 * start + c + j] = dy;
            }
            gMean = default(TReduce).Sum(gMean) / c;
            gxMean = default(TReduce).Sum(gxMean) / c;
            for (int j = lane; j < c; j += width)
            {
                float dy = default(TConvert).ToFloat(a.dY[start + j]);
                float xhat = (a.X[start + j] - mean) * rstd;
                float dx = rstd * (dy * a.Weight[j] - gMean - xhat * gxMean);
                float total = a.Accumulate != 0 ? a.dX[start + j] + dx : dx;
                a.dX[start + j] = total;
                a.dXCompute[start + j] = default(TConvert).FromFloat(total);
            }
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

        /// <summary>Backward, one thread per row (host loops).</summary>
        public static void BackwardKernel<T, TConvert>(Index1D row, BackwardArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T> =>
            BackwardRow<T, TConvert, SingleLane>(a, row, 0, 1);

        /// <summary>Backward, one warp per row (GPU).</summary>
        public static void BackwardRowsKernel<T, TConvert>(BackwardArgs<T> a)
            where T : unmanaged
            where TConvert : struct, IElementConvert<T>
        {
            int row = RowLaunch.WarpRow();
            if (row < a.Rows)
                BackwardRow<T, TConvert, WarpReduce>(a, row, Warp.LaneIdx, Warp.WarpSize);
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
            RowLaunch.Launch(launcher, ForwardKernel<T, TConvert>, ForwardRowsKernel<T, TConvert>, rows, args);
        }

        /// <summary>
        /// Backward: dX (+)= dx and dXCompute = dX in the compute type; the [dweight | dbias] gradient
        /// (2·channels floats) is overwritten. <paramref name="paramRows"/> is scratch of rows × 2·channels,
        /// <paramref name="onesRows"/> a vector of at least <paramref name="rows"/> ones.
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
            RowLaunch.Launch(launcher, BackwardKernel<T, TConvert>, BackwardRowsKernel<T, TConvert>, rows, args);
            gemm.Run<float, FloatConvert, float, FloatConvert>(
                false, false, 1, 2 * channels, rows, 1f, onesRows, rows, paramRows, 2 * channels, 0f, gradWeightAndBias, 2 * channels);
        }
    }
}
