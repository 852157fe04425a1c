using XFormers.Kernels;
using XFormers.Training;
using static XFormers.Tests.Training.TrainingTestUtil;

namespace XFormers.Tests.Training;

/// <summary>
/// The fused cross-entropy (online softmax: max, sum and argmax in one pass, then the gradient written over the logits)
/// against the unfused composition in fp64 (softmax, then loss, then gradient) and against finite differences of the mean
/// loss, on rows wider than a warp where each lane's running max keeps growing, with ties across lanes, in fp32 and fp16.
/// </summary>
[Collection(CpuCollection.Name)]
public sealed class FusedCrossEntropyTests(CpuContextFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    /// <summary>Rows: random, rising (the running max grows at every element), falling, a tie between two lanes' elements.</summary>
    private static float[] Logits(int rows, int vocab)
    {
        var z = Random(31, rows * vocab, 2f);
        for (int v = 0; v < vocab; v++)
        {
            z[1 * vocab + v] = -20f + 40f * v / vocab;
            z[2 * vocab + v] = 25f - 50f * v / vocab;
        }
        z[3 * vocab + 40] = z[3 * vocab + 9] = 30f;     // lanes 8 and 9 of a warp: the smaller index wins
        return z;
    }

    /// <summary>The unfused composition in fp64: loss, argmax and gradient (scale · (softmax − onehot) / rows).</summary>
    private static (double[] Loss, float[] Correct, double[] Grad) Unfused(float[] logits, int[] targets, int rows, int vocab, double scale)
    {
        var loss = new double[rows];
        var correct = new float[rows];
        var grad = new double[rows * vocab];
        for (int n = 0; n < rows; n++)
        {
            var z = logits.Skip(n * vocab).Take(vocab).Select(v => (double)v).ToArray();
            double max = z.Max();
            var softmax = z.Select(v => Math.Exp(v - max)).ToArray();
            double sum = softmax.Sum();
            loss[n] = Math.Log(sum) + max - z[targets[n]];
            correct[n] = Array.IndexOf(z, max) == targets[n] ? 1f : 0f;
            for (int v = 0; v < vocab; v++)
                grad[n * vocab + v] = (softmax[v] / sum - (v == targets[n] ? 1 : 0)) * scale / rows;
        }
        return (loss, correct, grad);
    }

    /// <summary>
    /// 1037 and 13: rows start off the 8-element grid (a head and a tail around whole vectors); 1040: whole vectors only;
    /// warpPerRow: the GPU's group-per-row kernel, run by ILGPU on the CPU accelerator (a group of 32 warps of 4 lanes).
    /// </summary>
    [Theory]
    [InlineData(false, 1037)]
    [InlineData(true, 1037)]
    [InlineData(false, 1040)]
    [InlineData(true, 1040)]
    [InlineData(false, 13)]
    [InlineData(true, 13)]
    public void Fused_matches_the_unfused_composition_in_fp32(bool warpPerRow, int vocab)
    {
        const int Rows = 4;
        var logits = Logits(Rows, Math.Max(vocab, 41))[..(Rows * vocab)];
        if (vocab < 41)
            logits = Random(32, Rows * vocab, 3f);
        var targets = new[] { 3 % vocab, vocab - 1, 0, 9 % vocab };
        var (loss, correct, grad) = Run<float, FloatConvert>(logits, targets, vocab, warpPerRow, scale: 1024f);
        var expected = Unfused(logits, targets, Rows, vocab, 1024.0);
        RelativeError(loss, expected.Loss).ShouldBeLessThan(1e-6);
        correct.ShouldBe(expected.Correct);
        if (vocab > 41)
            correct[3].ShouldBe(1f, "the tie at 9 and 40 goes to 9, the target");
        RelativeError(grad, expected.Grad).ShouldBeLessThan(1e-5);
    }

    /// <summary>
    /// Each row's max appears twice and the target is the first: within one vector, in neighbouring lanes, in
    /// different warps, twice in one lane (a vector and the vector a group's width later), and in the head and tail of
    /// rows off the 8-element grid. The argmax must be the first every time, on the host and in the group kernel.
    /// </summary>
    [Theory]
    [InlineData(false, 2048)]
    [InlineData(true, 2048)]
    [InlineData(false, 2045)]
    [InlineData(true, 2045)]
    public void Argmax_ties_go_to_the_first_index(bool warpPerRow, int vocab)
    {
        int[][] ties = [[16, 17], [16, 24], [16, 48], [16, 16 + 8 * 128], [0, vocab - 1], [vocab - 3, vocab - 1], [2, 1500]];
        var logits = Random(34, ties.Length * vocab, 1f);
        for (int n = 0; n < ties.Length; n++)
            logits[n * vocab + ties[n][0]] = logits[n * vocab + ties[n][1]] = 6f;
        var targets = ties.Select(t => t[0]).ToArray();
        var (loss, correct, grad) = Run<float, FloatConvert>(logits, targets, vocab, warpPerRow, scale: 1f);
        correct.ShouldAllBe(c => c == 1f);
        var expected = Unfused(logits, targets, ties.Length, vocab, 1.0);
        RelativeError(loss, expected.Loss).ShouldBeLessThan(1e-6);
        RelativeError(grad, expected.Grad).ShouldBeLessThan(1e-5);
    }

    /// <summary>A GPT-2 vocabulary (50,257: odd) in fp16 and a logits view that starts off the 16-byte grid (element-wise path).</summary>
    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(false, 3)]
    [InlineData(true, 3)]
    public void Gpt2_vocabulary_in_fp16_at_any_offset(bool warpPerRow, int offset)
    {
        const int Rows = 3, Vocab = 50257;
        var logits = Random(35, Rows * Vocab, 3f).Select(v => (float)(Half)v).ToArray();
        var targets = new[] { 0, 50256, 12345 };
        logits[2 * Vocab + 12345] = 40f;
        var padded = new Half[offset].Concat(logits.Select(v => (Half)v)).ToArray();
        var (loss, correct, grad) = Run<Half, HalfConvert>(padded, targets, Vocab, warpPerRow, scale: 65536f, offset);
        var expected = Unfused(logits, targets, Rows, Vocab, 65536.0);
        RelativeError(loss, expected.Loss).ShouldBeLessThan(1e-5);
        correct.ShouldBe(expected.Correct);
        correct[2].ShouldBe(1f);
        RelativeError(grad.Skip(offset).Select(g => (float)g).ToArray(), expected.Grad).ShouldBeLessThan(2e-3);
    }

    [Fact]
    public void Gradient_matches_finite_differences_of_the_mean_loss()
    {
        const int Rows = 3, Vocab = 70;
        var logits = Random(33, Rows * Vocab, 1.5f);
        var targets = new[] { 5, 69, 0 };
        var (_, _, grad) = Run<float, FloatConvert>(logits, targets, Vocab, warpPerRow: true, scale: 1f);
        double Loss(float[] z) => Unfused(z, targets, Rows, Vocab, 1.0).Loss.Average();
        RelativeError(grad, FiniteDifferences(logits, Loss, 1e-2f)).ShouldBeLessThan(1e-3);
    }

    [Fact]
    public void Fp16_writes_dlogits_in_place_within_fp16_rounding()
    {
        const int Rows = 4, Vocab = 1037;
        var logits = Logits(Rows, Vocab).Select(v => (float)(Half)v).ToArray();
        var targets = new[] { 3, 1036, 0, 9 };
        var (loss, _, grad) = Run<Half, HalfConvert>(logits.Select(v => (Half)v).ToArray(), targets, Vocab, warpPerRow: true, scale: 65536f);
        var expected = Unfused(logits, targets, Rows, Vocab, 65536.0);
        RelativeError(loss, expected.Loss).ShouldBeLessThan(1e-5);
        RelativeError(grad.Select(g => (float)g).ToArray(), expected.Grad).ShouldBeLessThan(2e-3);
    }

    /// <summary>Runs the fused kernel on <paramref name="logits"/> from element <paramref name="offset"/> on; returns the whole buffer's gradient.</summary>
    private (float[] Loss, float[] Correct, float[] Grad) Run<T, TConvert>(T[] logits, int[] targets, int vocab, bool warpPerRow, float scale, int offset = 0)
        where T : unmanaged
        where TConvert : struct, IElementConvert<T>
    {
        int rows = targets.Length;
        var launcher = new DeviceLauncher(context) { UseIlgpuOnCpu = warpPerRow };
        using var dLogits = Upload(context, logits);
        using var dTargets = Upload(context, targets);
        using var rowLoss = Upload(context, new float[rows]);
        using var rowCorrect = Upload(context, new float[rows]);
        using var lossScale = Upload(context, new[] { scale });
        CrossEntropy.ForwardBackward<T, TConvert>(launcher, rows, vocab, dLogits.View.SubView(offset, (long)rows * vocab), dTargets.View, rowLoss.View, rowCorrect.View,
            lossScale.View, writeGradient: true);
        var grad = Download(context, dLogits).Select(g => ElementType.ToFloat(g)).ToArray();
        return (Download(context, rowLoss), Download(context, rowCorrect), grad);
    }

    /// <summary>Central differences of <paramref name="loss"/> at every coordinate of <paramref name="x"/>.</summary>
    private static double[] FiniteDifferences(float[] x, Func<float[], double> loss, float h)
    {
        var grad = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            float saved = x[i];
            x[i] = saved + h;
            double plus = loss(x);
            x[i] = saved - h;
            double minus = loss(x);
            x[i] = saved;
            grad[i] = (plus - minus) / (2 * h);
        }
        return grad;
    }
}
