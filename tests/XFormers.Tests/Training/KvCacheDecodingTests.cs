using XFormers.Dsl;
using XFormers.Kernels;
using XFormers.Training;

namespace XFormers.Tests.Training;

/// <summary>
/// Decoding with the KV cache (<see cref="ITinyGpt.DecodeLogits"/>) against the training forward over the whole window
/// (<see cref="ITinyGpt.NextTokenLogits"/>), which recomputes every position; and the sampler.
/// </summary>
[Collection(CpuCollection.Name)]
public sealed class KvCacheDecodingTests(CpuContextFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    private static TinyGptConfig Config(DType dtype) => new()
    {
        Vocab = 13, Dim = 32, Layers = 2, Heads = 2, Sequence = 12, Batch = 1, DType = dtype, Seed = 4,
    };

    /// <summary>A model whose weights are 20 times GPT-2's init, so that attention and every layer move the logits.</summary>
    private ITinyGpt Model(DType dtype, TokenBatch data)
    {
        var config = Config(dtype);
        ITinyGpt model = dtype == DType.Float32
            ? new TinyGpt<float, FloatConvert>(context, config, data)
            : new TinyGpt<Half, HalfConvert>(context, config, data);
        var state = model.ReadState();
        model.WriteState(state with { Params = state.Params.Select((p, i) => p * 20f + (i % 5 == 0 ? 0.05f : 0f)).ToArray() });
        return model;
    }

    [Theory]
    [InlineData(DType.Float32, 1e-4)]
    [InlineData(DType.Float16, 2e-2)]
    public void Cached_logits_equal_the_recomputed_ones_at_every_position(DType dtype, double tolerance)
    {
        using var data = TokenBatch.Counting(context, 13, 1);
        using var model = Model(dtype, data);
        int window = model.Config.Sequence;
        int[] sequence = { 3, 7, 1, 12, 5, 5, 0, 9, 2, 11, 4, 8 };
        var padded = new int[window];
        sequence.CopyTo(padded, 0);
        float[]? previous = null;
        void Check(float[] cached, int position)
        {
            var recomputed = model.NextTokenLogits(padded, position);
            double scale = Math.Max(1, recomputed.Max(Math.Abs));
            double error = cached.Zip(recomputed, (a, b) => Math.Abs(a - b)).Max() / scale;
            error.ShouldBeLessThan(tolerance, $"position {position}");
            // Positions differ, or equal logits would say nothing about which prefix the cache attended to.
            recomputed.ShouldNotBe(previous);
            previous = recomputed;
        }

        // A prefill of 4 tokens (one causal piece), then one token per step to the end of the window.
        Check(model.DecodeLogits(sequence[..4], 0), 3);
        for (int p = 4; p < window; p++)
            Check(model.DecodeLogits(new[] { sequence[p] }, p), p);

        // A new sequence overwrites the cache from position 0; a chunk of 3 after a prefill of 2 (queries at an offset).
        Check(model.DecodeLogits(sequence[..2], 0), 1);
        Check(model.DecodeLogits(sequence[2..5], 2), 4);
        Check(model.DecodeLogits(new[] { sequence[5] }, 5), 5);
    }

    [Fact]
    public void Greedy_generation_with_the_cache_matches_recomputing_and_sampling_repeats_with_a_seed()
    {
        using var data = TokenBatch.Counting(context, 13, 1);
        using var model = Model(DType.Float32, data);
        int[] prompt = { 2, 3, 4 };
        // Past the 12 positions: the cached path prefills the last half of the window again.
        var cached = TinyGptGeneration.Generate(model, prompt, 15, new TokenSampler(temperature: 0f), kvCache: true);
        var recomputed = TinyGptGeneration.Generate(model, prompt, 9, new TokenSampler(temperature: 0f), kvCache: false);
        cached.Tokens.Length.ShouldBe(15);
        cached.Tokens[..9].ShouldBe(recomputed.Tokens, "greedy tokens within the window");

        TokenSampler Seeded() => new(temperature: 1.5f, topK: 5, seed: 11);
        var first = TinyGptGeneration.Generate(model, prompt, 14, Seeded(), kvCache: true).Tokens;
        var second = TinyGptGeneration.Generate(model, prompt, 14, Seeded(), kvCache: true).Tokens;
        second.ShouldBe(first);
        first.Distinct().Count().ShouldBeGreaterThan(1, "temperature 1.5 over 5 tokens should not repeat one token 14 times");
        TinyGptGeneration.Generate(model, prompt, 14, new TokenSampler(temperature: 1.5f, topK: 5, seed: 12), kvCache: true).Tokens.ShouldNotBe(first);
    }

    [Fact]
    public void Sampler_keeps_to_the_top_k_and_the_vocabulary()
    {
        float[] logits = { 0.5f, 3f, -1f, 2.9f, 2.8f, 10f };
        var greedy = new TokenSampler(temperature: 0f, vocabulary: 5);
        greedy.Sample(logits).ShouldBe(1, "id 5 is past the vocabulary");
        var topTwo = new TokenSampler(temperature: 5f, topK: 2, seed: 3, vocabulary: 5);
        var drawn = Enumerable.Range(0, 400).Select(_ => topTwo.Sample(logits)).ToArray();
        drawn.Distinct().OrderBy(t => t).ShouldBe(new[] { 1, 3 });
        // exp(0.1 / 5) : 1 — nearly even; both far from never.
        drawn.Count(t => t == 1).ShouldBeInRange(150, 260);
    }

    [Fact]
    public void Sampler_draws_in_proportion_to_exp_logit_over_temperature()
    {
        // Weights 1 : 2 : 3 at temperature 1 (a NaN never drawn); with top-k 2, ids 1 and 2 at 2 : 3.
        float[] logits = { 0f, MathF.Log(2f), MathF.Log(3f), float.NaN };
        const int draws = 60000;
        var all = new TokenSampler(temperature: 1f, seed: 5);
        var counts = new int[4];
        for (int i = 0; i < draws; i++)
            counts[all.Sample(logits)]++;
        counts[3].ShouldBe(0);
        for (int id = 0; id < 3; id++)
            ((double)counts[id] / draws).ShouldBe((id + 1) / 6.0, 0.01, $"id {id}");

        var top = new TokenSampler(temperature: 1f, topK: 2, seed: 6);
        var topCounts = new int[4];
        for (int i = 0; i < draws; i++)
            topCounts[top.Sample(logits)]++;
        (topCounts[0] + topCounts[3]).ShouldBe(0);
        ((double)topCounts[2] / draws).ShouldBe(0.6, 0.01);

        // Greedy: ties go to the smaller id; a NaN is never the largest.
        new TokenSampler(temperature: 0f).Sample(new[] { float.NaN, 1f, 4f, 4f }).ShouldBe(2);
    }

    [Fact]
    public void Bad_decoding_input_names_the_argument()
    {
        using var data = TokenBatch.Counting(context, 13, 1);
        using var model = Model(DType.Float32, data);
        model.DecodeLogits(new[] { 1, 2 }, 0);
        Should.Throw<ArgumentOutOfRangeException>(() => model.DecodeLogits(new[] { 3 }, 5)).ParamName.ShouldBe("position");
        Should.Throw<ArgumentException>(() => model.DecodeLogits(Enumerable.Repeat(1, 13).ToArray(), 0)).ParamName.ShouldBe("tokens");
        Should.Throw<ArgumentOutOfRangeException>(() => model.DecodeLogits(new[] { 13 }, 2)).ParamName.ShouldBe("tokens");
        Should.Throw<ArgumentOutOfRangeException>(() => new TokenSampler(temperature: -1f)).ParamName.ShouldBe("temperature");
        Should.Throw<ArgumentOutOfRangeException>(() => new TokenSampler(topK: -2)).ParamName.ShouldBe("topK");
    }
}
