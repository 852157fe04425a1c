using XFormers.Reference;

namespace XFormers.Tests.Reference;

/// <summary>
/// The fp64 oracles that dropout and local (sliding-window) attention kernels will be checked against: Philox against
/// its published known-answer vectors, the dropout mask's statistics, the dropout backward against finite differences,
/// and the local masks against their definition.
/// </summary>
public class DropoutAndLocalReferenceTests
{
    [Fact]
    public void PhiloxMatchesTheKnownAnswerVectors()
    {
        // Random123's kat_vectors for philox4x32, 10 rounds.
        Philox.Generate((0, 0, 0, 0), (0, 0)).ShouldBe((0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u));
        Philox.Generate((0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff), (0xffffffff, 0xffffffff))
            .ShouldBe((0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu));
        Philox.Generate((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0))
            .ShouldBe((0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u));
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    public void DropoutKeepsOneMinusPOfTheScores(double p)
    {
        // 2 × 4 × 100 × 250 = 200 000 scores: the keep rate is within 5 standard deviations of 1 − p, for each of the
        // four words of a Philox call (j % 4) as well as overall.
        const ulong seed = 0x1234_5678_9abc_def0;
        var kept = new long[4];
        var total = new long[4];
        for (int b = 0; b < 2; b++)
            for (int h = 0; h < 4; h++)
                for (int i = 0; i < 100; i++)
                    for (int j = 0; j < 250; j++)
                    {
                        total[j & 3]++;
                        if (DropoutReference.Keep(seed, p, b, h, i, j))
                            kept[j & 3]++;
                    }
        for (int w = 0; w < 4; w++)
        {
            double sigma = Math.Sqrt(p * (1 - p) / total[w]);
            Math.Abs((double)kept[w] / total[w] - (1 - p)).ShouldBeLessThan(5 * sigma);
        }
        DropoutReference.Keep(seed, 0, 0, 0, 0, 0).ShouldBeTrue();
        DropoutReference.Keep(seed, 1, 0, 0, 0, 0).ShouldBeFalse();
    }

    [Fact]
    public void TheSameSeedGivesTheSameMaskAndAnotherSeedAnother()
    {
        bool[] Mask(ulong seed) => Enumerable.Range(0, 4096).Select(n => DropoutReference.Keep(seed, 0.3, 1, 2, n / 64, n % 64)).ToArray();
        Mask(7).ShouldBe(Mask(7));
        Mask(7).Zip(Mask(8)).Count(x => x.First != x.Second).ShouldBeGreaterThan(1000);
    }

    [Fact]
    public void DropoutWithPZeroIsAttention()
    {
        var (p, q, k, v, dO) = Problem(MaskKind.Causal);
        var plain = ReferenceAttention.Forward(p, q, k, v);
        var dropout = DropoutReference.Forward(p, q, k, v, 0, seed: 3);
        ReferenceAttention.ScaledError(dropout.Output, plain.Output).ShouldBeLessThan(1e-15);
        dropout.Lse.ShouldBe(plain.Lse);
        var grads = ReferenceAttention.Backward(p, q, k, v, dO);
        var dropGrads = DropoutReference.Backward(p, q, k, v, dO, 0, seed: 3);
        ReferenceAttention.ScaledError(dropGrads.Query, grads.Query).ShouldBeLessThan(1e-14);
        ReferenceAttention.ScaledError(dropGrads.Key, grads.Key).ShouldBeLessThan(1e-14);
        ReferenceAttention.ScaledError(dropGrads.Value, grads.Value).ShouldBeLessThan(1e-14);
    }

    [Fact]
    public void DropoutBackwardMatchesFiniteDifferencesOfItsForward()
    {
        // L = Σ dO ∘ O with the mask fixed by the seed; central differences with step 1e-6 in fp64.
        var (p, q, k, v, dO) = Problem(MaskKind.CausalFromBottomRight);
        const double rate = 0.25;
        const ulong seed = 42;
        var grads = DropoutReference.Backward(p, q, k, v, dO, rate, seed);
        double Loss(double[] qq, double[] kk, double[] vv) =>
            DropoutReference.Forward(p, qq, kk, vv, rate, seed).Output.Zip(dO, (o, g) => o * g).Sum();
        foreach (var (input, grad) in new[] { (q, grads.Query), (k, grads.Key), (v, grads.Value) })
        {
            var numeric = new double[input.Length];
            for (int e = 0; e < input.Length; e++)
            {
                double saved = input[e];
                input[e] = saved + 1e-6;
                double up = Loss(q, k, v);
                input[e] = saved - 1e-6;
                double down = Loss(q, k, v);
                input[e] = saved;
                numeric[e] = (up - down) / 2e-6;
            }
            ReferenceAttention.ScaledError(grad, numeric).ShouldBeLessThan(1e-7);
        }
    }

    [Fact]
    public void LocalWindowsFollowTheirDefinition()
    {
        // Window 1: the diagonal only. A window as long as the keys: plain causal. Otherwise the last `window` keys up to the diagonal.
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 9; j++)
            {
                LocalAttentionReference.Visible(i, j, shift: 3, window: 1).ShouldBe(j == i + 3);
                LocalAttentionReference.Visible(i, j, shift: 3, window: 9 + 6).ShouldBe(j <= i + 3);
                LocalAttentionReference.Visible(i, j, shift: 0, window: 2).ShouldBe(j == i || j == i - 1);
            }
        var bias = LocalAttentionReference.Bias(mq: 4, mkv: 6, window: 3, fromBottomRight: true);
        // Row 0 (diagonal at key 2) sees keys 0..2; row 3 (diagonal at key 5) sees keys 3..5.
        bias.Take(6).Select(double.IsFinite).ShouldBe(new[] { true, true, true, false, false, false });
        bias.Skip(18).Select(double.IsFinite).ShouldBe(new[] { false, false, false, true, true, true });
        Should.Throw<ArgumentOutOfRangeException>(() => LocalAttentionReference.Bias(2, 2, 0, false)).ParamName.ShouldBe("window");
    }

    [Fact]
    public void ALongWindowIsTheCausalMaskInsideEachSegment()
    {
        int[] qStarts = { 0, 3, 3, 8 }, kvStarts = { 0, 5, 7, 12 };
        var bias = LocalAttentionReference.Bias(8, 12, window: 100, fromBottomRight: false, qStarts, kvStarts);
        var causal = new ReferenceAttention.Problem(1, 8, 12, 1, 1, 8, 1, MaskKind.BlockDiagonalCausal, qStarts, kvStarts);
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 12; j++)
                double.IsFinite(bias[i * 12 + j]).ShouldBe(ReferenceAttention.Visible(causal, i, j));
    }

    private static (ReferenceAttention.Problem P, double[] Q, double[] K, double[] V, double[] DO) Problem(MaskKind mask)
    {
        var p = new ReferenceAttention.Problem(2, 5, 7, 4, 2, 8, 1 / Math.Sqrt(8), mask);
        double[] Data(int seed, long n) => HostRandom.Normal(seed, (int)n).Select(x => (double)x).ToArray();
        return (p, Data(1, 2 * 5 * 4 * 8), Data(2, 2 * 7 * 2 * 8), Data(3, 2 * 7 * 2 * 8), Data(4, 2 * 5 * 4 * 8));
    }
}
