using System;
using System.Globalization;
using System.Linq;
using XFormers.Training;

namespace XFormers.Samples.TinyGpt;

/// <summary>
/// <c>--generate N</c>: samples N tokens twice from the same seed, with the model's KV cache (prefill once, then one decoding
/// step per token through Fmha's decode path) and by recomputing the window for every token (the training forward), and
/// prints the text and each path's tokens/s.
/// </summary>
internal static class Generation
{
    public static void Run(ITinyGpt model, TextTokenizer? tokenizer, int[] prompt, int count, float temperature, int topK, int seed)
    {
        int? vocabulary = tokenizer?.VocabSize;
        TokenSampler Sampler() => new(temperature, topK, seed, vocabulary);
        string Text(int[] tokens) => tokenizer is not null ? tokenizer.Decode(tokens) : "[" + string.Join(", ", tokens) + "]";

        // Two tokens each first (a prefill and a step): kernels compile on first use, which is not decoding speed.
        TinyGptGeneration.Generate(model, prompt, 2, Sampler(), kvCache: true);
        TinyGptGeneration.Generate(model, prompt, 2, Sampler(), kvCache: false);
        var cached = TinyGptGeneration.Generate(model, prompt, count, Sampler(), kvCache: true);
        var recomputed = TinyGptGeneration.Generate(model, prompt, count, Sampler(), kvCache: false);

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"generate: {count} tokens after a prompt of {prompt.Length}, temperature {temperature}, top-k {(topK > 0 ? topK.ToString(CultureInfo.InvariantCulture) : "all")}, seed {seed}"));
        Console.WriteLine(Text(prompt.Concat(cached.Tokens).ToArray()));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  KV cache:  {cached.TokensPerSecond,10:F1} tokens/s ({cached.Seconds:F3} s)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  recompute: {recomputed.TokensPerSecond,10:F1} tokens/s ({recomputed.Seconds:F3} s; the whole {model.Config.Sequence}-token window per token)"));
        int differ = FirstDifference(cached.Tokens, recomputed.Tokens);
        Console.WriteLine(differ < 0
            ? "  both paths drew the same tokens"
            : $"  the paths part at token {differ} (logits that differ in rounding can tip a draw; past the window the cache restarts from its last half)");
    }

    private static int FirstDifference(int[] a, int[] b)
    {
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
        {
            if (a[i] != b[i])
                return i;
        }
        return -1;
    }

    /// <summary>The prompt's tokens: <paramref name="text"/> encoded, or for the counting task token ids separated by commas or spaces.</summary>
    public static int[] Prompt(string text, TextTokenizer? tokenizer, int vocab)
    {
        if (tokenizer is not null)
            return tokenizer.Encode(text);
        var parts = text.Split(new[] { ',', ' ' }, StringSplitOptions.RemoveEmptyEntries);
        var tokens = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out tokens[i]) || tokens[i] < 0 || tokens[i] >= vocab)
                throw new ArgumentException($"--prompt '{text}': '{parts[i]}' is not a token id from 0 to {vocab - 1} (the counting task's prompt is ids separated by commas).");
        }
        return tokens;
    }
}
