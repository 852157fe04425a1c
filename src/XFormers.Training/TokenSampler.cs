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
        /// <remarks>
        /// One pass over the logits, and a heap of <see cref="TopK"/> ids when there is a k: no sort of the vocabulary, which
        /// at GPT-2's 50,304 ids took about 10 ms a token. A NaN logit counts as −∞.
        /// </remarks>
        public int Sample(float[] logits)
        {
            ArgumentNullException.ThrowIfNull(logits);
            int count = Math.Min(logits.Length, Vocabulary ?? logits.Length);
            if (count == 0)
                throw new ArgumentException("no logits to sample from.", nameof(logits));
            if (Temperature == 0f)
                return Largest(logits, count);
            int[] ids = TopK > 0 && TopK < count ? TopIds(logits, count, TopK) : Enumerable.Range(0, count).ToArray();
            double max = ids.Max(id => (double)Logit(logits, id));
            if (double.IsNegativeInfinity(max))
                return ids.Min();
            var weights = new double[ids.Length];
            double sum = 0;
            for (int i = 0; i < ids.Length; i++)
                sum += weights[i] = Math.Exp((Logit(logits, ids[i]) - max) / Temperature);
            double u = random.NextDouble() * sum;
            for (int i = 0; i < ids.Length; i++)
            {
                u -= weights[i];
                if (u <= 0)
                    return ids[i];
            }
            return ids[^1];
        }

        private static float Logit(float[] logits, int id) => float.IsNaN(logits[id]) ? float.NegativeInfinity : logits[id];

        /// <summary>The id of the largest logit, ties to the smaller id.</summary>
        private static int Largest(float[] logits, int count)
        {
            int best = 0;
            for (int id = 1; id < count; id++)
            {
                if (Logit(logits, id) > Logit(logits, best))
                    best = id;
            }
            return best;
        }

        /// <summary>The <paramref name="k"/> ids of the largest logits (ties to the smaller id), largest first.</summary>
        private static int[] TopIds(float[] logits, int count, int k)
        {
            // A min-heap of the k best so far: its root is the one a better id replaces.
            var order = Comparer<(float Logit, int Id)>.Create((a, b) => a.Logit != b.Logit ? a.Logit.CompareTo(b.Logit) : b.Id.CompareTo(a.Id));
            var heap = new PriorityQueue<int, (float Logit, int Id)>(k, order);
            for (int id = 0; id < count; id++)
            {
                var key = (Logit(logits, id), id);
                if (heap.Count < k)
                    heap.Enqueue(id, key);
                else if (heap.TryPeek(out _, out var worst) && order.Compare(key, worst) > 0)
                    heap.DequeueEnqueue(id, key);
            }
            var ids = new int[heap.Count];
            for (int i = ids.Length - 1; i >= 0; i--)
                ids[i] = heap.Dequeue();
            return ids;
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
