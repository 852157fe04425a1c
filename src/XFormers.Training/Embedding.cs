using System;
using ILGPU;
using XFormers.Kernels;

namespace XFormers.Training
{
    /// <summary>
    /// Token plus learned position embeddings into the fp32 residual stream (embeddings are not autocast).
    /// The backward is deterministic without float atomics: the batch's token positions are ranked by
    /// (token, position) — counts of smaller keys over chunks of <see cref="RankChunk"/> positions, then a sum
    /// of the chunk counts, O(N²) comparisons spread over N²/RankChunk threads — and each run of equal tokens
    /// is summed in that fixed order by one thread per channel. The position gradient is a sum
    /// over the batch: one GEMM with a ones vector.
    /// </summary>
    internal static class Embedding
    {
        public struct ForwardArgs
        {
            public ArrayView<int> Tokens;
            public ArrayView<float> TokenTable;
            public ArrayView<float> PositionTable;
            public ArrayView<float> Output;
            public int Sequence;
            public int Channels;
        }

        /// <summary>Positions compared by one thread of the rank pass.</summary>
        public const int RankChunk = 64;

        public struct SortArgs
        {
            public ArrayView<int> Tokens;
            public ArrayView<int> Order;
            public ArrayView<int> Partial;
            public int Count;
        }

        public struct TokenGradArgs
        {
            public ArrayView<int> Tokens;
            public ArrayView<int> Order;
            public ArrayView<float> dOutput;
            public ArrayView<float> dTokenTable;
            public int Count;
            public int Channels;
        }

        public static void ForwardKernel(Index1D index, ForwardArgs a)
        {
            int n = index / a.Channels;
            int c = index - n * a.Channels;
            int t = n % a.Sequence;
            a.Output[index] = a.TokenTable[(long)a.Tokens[n] * a.Channels + c] + a.PositionTable[(long)t * a.Channels + c];
        }

        /// <summary>Partial[chunk·N + n] = how many positions of the chunk sort before n by (token, position).</summary>
        public static void RankPartialKernel(Index1D index, SortArgs a)
        {
            int chunk = index / a.Count;
            int n = index - chunk * a.Count;
            int token = a.Tokens[n];
            int first = chunk * RankChunk;
            int end = Math.Min(a.Count, first + RankChunk);
            int smaller = 0;
            for (int other = first; other < end; other++)
            {
                int t = a.Tokens[other];
                if (t < token || (t == token && other < n))
                    smaller++;
            }
            a.Partial[index] = smaller;
        }

        /// <summary>Order[rank of n] = n, the rank being the sum of n's chunk counts.</summary>
        public static void RankKernel(Index1D n, SortArgs a)
        {
            int chunks = (a.Count + RankChunk - 1) / RankChunk;
            int rank = 0;
            for (int chunk = 0; chunk < chunks; chunk++)
                rank += a.Partial[chunk * a.Count + n];
            a.Order[rank] = n;
        }

        /// <summary>The first position of each run of equal tokens sums the run for its channel.</summary>
        public static void TokenGradKernel(Index1D index, TokenGradArgs a)
        {
            int s = index / a.Channels;
            int c = index - s * a.Channels;
            int token = a.Tokens[a.Order[s]];
            if (s > 0 && a.Tokens[a.Order[s - 1]] == token)
                return;
            float sum = 0f;
            for (int r = s; r < a.Count; r++)
            {
                int n = a.Order[r];
                if (a.Tokens[n] != token)
                    break;
                sum += a.dOutput[(long)n * a.Channels + c];
            }
            a.dTokenTable[(long)token * a.Channels + c] = sum;
        }

        public static void Forward(
            DeviceLauncher launcher, int batch, int sequence, int channels, ArrayView<int> tokens,
            ArrayView<float> tokenTable, ArrayView<float> positionTable, ArrayView<float> output) =>
            launcher.Launch(ForwardKernel, (long)batch * sequence * channels, new ForwardArgs
            {
                Tokens = tokens,
                TokenTable = tokenTable,
                PositionTable = positionTable,
                Output = output,
                Sequence = sequence,
                Channels = channels,
            });

        /// <summary>Ints of scratch the backward needs for <paramref name="count"/> tokens: the order and the chunk counts.</summary>
        public static long SortScratch(int count) => count + (long)((count + RankChunk - 1) / RankChunk) * count;

        /// <summary>
        /// Overwrites dTokenTable (zero for tokens absent from the batch) and dPositionTable.
        /// <paramref name="order"/> is int scratch of <see cref="SortScratch"/> ints; <paramref name="onesBatch"/> at least batch ones.
        /// </summary>
        public static void Backward(
            DeviceLauncher launcher, Gemm gemm, int batch, int sequence, int channels, ArrayView<int> tokens,
            ArrayView<float> dOutput, ArrayView<float> dTokenTable, ArrayView<float> dPositionTable,
            ArrayView<int> order, ArrayView<float> onesBatch)
        {
            int count = batch * sequence;
            launcher.Zero(dTokenTable);
            int chunks = (count + RankChunk - 1) / RankChunk;
            var sort = new SortArgs { Tokens = tokens, Order = order.SubView(0, count), Partial = order.SubView(count, (long)chunks * count), Count = count };
            launcher.Launch(RankPartialKernel, (long)chunks * count, sort);
            launcher.Launch(RankKernel, count, sort);
            launcher.Launch(TokenGradKernel, (long)count * channels, new TokenGradArgs
            {
                Tokens = tokens,
                Order = order.SubView(0, count),
                dOutput = dOutput,
                dTokenTable = dTokenTable,
                Count = count,
                Channels = channels,
            });
            int width = sequence * channels;
            gemm.Run<float, FloatConvert, float, FloatConvert>(
                false, false, 1, width, batch, 1f, onesBatch, batch, dOutput, width, 0f, dPositionTable, width);
        }
    }
}
