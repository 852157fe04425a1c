using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;

namespace XFormers.Training
{
    /// <summary>
    /// Picks next tokens from logits: softmax(logits / temperature) over the <see cref="TopK"/> largest logits of the first
    /// <see cref="Vocabulary"/> ids, drawn with a generator seeded once; temperature 0 takes the argmax. The same seed and
    /// logits give the same tokens.
    /// </summary>
    public sealed class TokenSampler
    {
        private readonly Random random;

        /// <param name="temperature">Divides the logits; 0 samples greedily.</param>
        /// <param name="topK">Sample among the k largest logits; 0 among all.</param>
        /// <param name="seed">Seed of the generator.</param>
        /// <param name="vocabulary">Ids to sample from, [0, vocabulary) (a tokenizer's size leaves out a vocabulary's padding); null: all.</param>
        public TokenSampler(float temperature = 0.8f, int topK = 0, int seed = 0, int? vocabulary = null)
        {
            if (!float.IsFinite(temperature) || temperature < 0f)
                throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be finite and at least 0 (0: greedy).");
            ArgumentOutOfRangeException.ThrowIfNegative(topK);
            if (vocabulary is <= 0)
                throw new ArgumentOutOfRangeException(nameof(vocabulary), vocabulary, "the vocabulary must hold at least one id.");
            Temperature = temperature;
            TopK = topK;
            Vocabulary = vocabulary;
            random = new Random(seed);
        }

        public float Temperature { get; }

        public int TopK { get; }

        public int? Vocabulary { get; }

        /// <summary>The next token for <paramref name="logits"/> (one per id).</summary>
        public int Sample(float[] logits)
        {
            ArgumentNullException.ThrowIfNull(logits);
            int count = Math.Min(logits.Length, Vocabulary ?? logits.Length);
            if (count == 0)
                throw new ArgumentException("no logits to sample from.", nameof(logits));
            // Ids by logit, largest first, ties to the smaller id; NaN last.
            var ids = Enumerable.Range(0, count)
                .OrderByDescending(id => float.IsNaN(logits[id]) ? float.NegativeInfinity : logits[id])
                .ThenBy(id => id)
                .Take(TopK > 0 ? TopK : count)
                .ToArray();
            if (Temperature == 0f)
                return ids[0];
            double max = logits[ids[0]];
            var weights = ids.Select(id => float.IsNaN(logits[id]) ? 0 : Math.Exp((logits[id] - max) / Temperature)).ToArray();
            double u = random.NextDouble() * weights.Sum();
            for (int i = 0; i < ids.Length; i++)
            {
                u -= weights[i];
                if (u <= 0)
                    return ids[i];
            }
            return ids[^1];
        }
    }

    /// <summary>Tokens a generation produced and the seconds it took (host and device, the prompt's processing included).</summary>
    public sealed record GenerationResult(int[] Tokens, double Seconds)
    {
        public double TokensPerSecond => Tokens.Length / Math.Max(Seconds, 1e-9);
    }

    /// <summary>Sampling from a <see cref="ITinyGpt"/>, with its KV cache or by recomputing the prefix.</summary>
    public static class TinyGptGeneration
    {
        /// <summary>
        /// Continues <paramref name="prompt"/> (an empty one: token 0) by <paramref name="count"/> tokens. With
        /// <paramref name="kvCache"/>, the prompt is prefilled once (<see cref="ITinyGpt.DecodeLogits"/> at position 0) and each
        /// new token is one decoding step against the cache; when the model's positions run out, the last half of them is
        /// prefilled again. Without, each token recomputes the whole window of the last Sequence tokens
        /// (<see cref="ITinyGpt.NextTokenLogits"/>, the training forward).
        /// </summary>
        public static GenerationResult Generate(ITinyGpt model, int[] prompt, int count, TokenSampler sampler, bool kvCache)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentNullException.ThrowIfNull(prompt);
            ArgumentNullException.ThrowIfNull(sampler);
            ArgumentOutOfRangeException.ThrowIfNegative(count);
            int window = model.Config.Sequence;
            var tokens = prompt.Length > 0 ? prompt.ToList() : new List<int> { 0 };
            var clock = Stopwatch.StartNew();
            if (kvCache)
            {
                int position = 0;
                for (int i = 0; i < count; i++)
                {
                    float[] logits;
                    if (i == 0 || position == window)
                    {
                        // Prefill: the prompt, or after the positions ran out the last half of them.
                        int keep = i == 0 ? Math.Min(tokens.Count, window) : Math.Max(1, window / 2);
                        logits = model.DecodeLogits(tokens.GetRange(tokens.Count - keep, keep).ToArray(), 0);
                        position = keep;
                    }
                    else
                    {
                        logits = model.DecodeLogits(new[] { tokens[^1] }, position);
                        position++;
                    }
                    tokens.Add(sampler.Sample(logits));
                }
            }
            else
            {
                var padded = new int[window];
                for (int i = 0; i < count; i++)
                {
                    int length = Math.Min(tokens.Count, window);
                    tokens.CopyTo(tokens.Count - length, padded, 0, length);
                    tokens.Add(sampler.Sample(model.NextTokenLogits(padded, length - 1)));
                }
            }
            return new GenerationResult(tokens.Skip(tokens.Count - count).ToArray(), clock.Elapsed.TotalSeconds);
        }
    }
}
