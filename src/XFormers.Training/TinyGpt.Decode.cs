using System;
using System.Collections.Generic;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Training
{
    /// <summary>
    /// Inference with a KV cache: each layer keeps the keys and values of one sequence's positions [0, Sequence) as
    /// [1, Sequence, H, K]. A call's queries attend to the filled part of the cache with
    /// <see cref="LowerTriangularFromBottomRightMask"/> (the queries are its last rows), one launch a layer into an output
    /// and a log-sum-exp allocated once. The rest of a block runs on the new tokens' rows only. (Through
    /// <see cref="Fmha.MemoryEfficientAttention{T}(Tensor{T}, Tensor{T}, Tensor{T}, AttentionBias?, float?, double, ulong?)"/>, which
    /// allocates its output and splits one query's keys across launches, a GPT-2-small step took 13 ms on the H200, no
    /// faster than recomputing the window; through <see cref="BlockDiagonalCausalWithOffsetPaddedKeysMask"/>, a mask planned
    /// and uploaded on every call, twice as long per token on the CPU: docs/TRAINING.md.)
    /// </summary>
    public sealed partial class TinyGpt<T, TConvert>
    {
        private Tensor<T>[]? keyCache, valueCache;
        private Tensor<T>? decodeQueries, decodeOutput;
        private readonly Dictionary<int, Tensor<float>> decodeLse = new();
        private int cachedTokens;

        public float[] DecodeLogits(int[] tokens, int position)
        {
            ArgumentNullException.ThrowIfNull(tokens);
            int capacity = Config.Sequence;
            if (tokens.Length == 0)
                throw new ArgumentException("need at least one token.", nameof(tokens));
            if (position < 0 || position > cachedTokens)
                throw new ArgumentOutOfRangeException(nameof(position), $"position {position} would leave a gap: the cache holds positions [0, {cachedTokens}).");
            if (position + tokens.Length > capacity)
                throw new ArgumentException(
                    $"positions [{position}, {position + tokens.Length}) pass the model's {capacity} positions; start again at position 0 with the last tokens.", nameof(tokens));
            foreach (int token in tokens)
            {
                if ((uint)token >= (uint)Config.Vocab)
                    throw new ArgumentOutOfRangeException(nameof(tokens), $"token {token} is outside the vocabulary [0, {Config.Vocab}).");
            }
            if (keyCache is null)
            {
                Tensor<T> Cache() => Own(Tensor<T>.Empty(Launcher.Context, 1, capacity, Config.Heads, Config.HeadDim));
                keyCache = Enumerable.Range(0, Config.Layers).Select(_ => Cache()).ToArray();
                valueCache = Enumerable.Range(0, Config.Layers).Select(_ => Cache()).ToArray();
                decodeQueries = Cache();
                decodeOutput = Cache();
            }

            // Positions at or past `position` are overwritten (a prefill at 0 starts a new sequence).
            cachedTokens = position;
            this.tokens.SubView(0, tokens.Length).CopyFromCPU(tokens);
            var step = new DecodeStep(this, position, tokens.Length);
            Forward(1, training: false, step);
            Launcher.Synchronize();
            cachedTokens = position + tokens.Length;
            var row = new T[Config.Vocab];
            logits.SubView((long)(tokens.Length - 1) * Config.Vocab, Config.Vocab).CopyToCPU(row);
            return row.Select(x => ElementType.ToFloat(x)).ToArray();
        }

        /// <summary>
        /// One call of <see cref="DecodeLogits"/>: its tokens' positions and one mask for all layers. Every layer's attention
        /// writes the same output rows: the next launch on the stream, the projection, reads them before the next layer
        /// writes them again.
        /// </summary>
        private sealed class DecodeStep
        {
            private readonly TinyGpt<T, TConvert> model;
            private static readonly LowerTriangularFromBottomRightMask BottomRight = new();

            public DecodeStep(TinyGpt<T, TConvert> model, int start, int count)
            {
                this.model = model;
                Start = start;
                Count = count;
            }

            /// <summary>Position of the first token.</summary>
            public int Start { get; }

            /// <summary>Tokens of this call.</summary>
            public int Count { get; }

            /// <summary>
            /// Layer <paramref name="layer"/>'s attention for this call's rows of <paramref name="qkv"/>: their keys and values
            /// go into the cache at [Start, Start + Count), their queries attend to the cache's [0, Start + Count).
            /// </summary>
            public Tensor<T> Attend(int layer, ArrayView<T> qkv)
            {
                int c = model.Config.Dim;
                var queries = model.decodeQueries!.Narrow(1, 0, Count);
                var keys = model.keyCache![layer].Narrow(1, 0, Start + Count);
                var values = model.valueCache![layer].Narrow(1, 0, Start + Count);
                long offset = (long)Start * c, length = (long)Count * c;
                CausalSelfAttention.Split(model.Launcher, Count, c, qkv, queries.View, keys.View.SubView(offset, length), values.View.SubView(offset, length));
                // The queries sit at the bottom right of the filled cache: a decoding step (one query) sees every key.
                var output = model.decodeOutput!.Narrow(1, 0, Count);
                if (!model.decodeLse.TryGetValue(Count, out var lse))
                    model.decodeLse[Count] = lse = model.Own(Tensor<float>.Empty(queries.Context, 1, model.Config.Heads, Count));
                Fmha.MemoryEfficientAttentionForward(queries, keys, values, output, lse, BottomRight, CausalSelfAttention.Scale(model.Config.HeadDim));
                if (queries.Context.IsCpu)
                    queries.Context.Synchronize();
                return output;
            }
        }
    }
}
