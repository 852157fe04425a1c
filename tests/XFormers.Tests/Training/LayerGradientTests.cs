using ILGPU;
using XFormers.Kernels;
using XFormers.Training;
using static XFormers.Tests.Training.TrainingTestUtil;

namespace XFormers.Tests.Training;

/// <summary>Each layer's forward against fp64 and its backward against fp64 formulas or finite differences.</summary>
[Collection(CpuCollection.Name)]
public sealed class LayerGradientTests(CpuContextFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    private static (double[] Y, double[] Mean, double[] Rstd) LayerNormReference(float[] x, float[] w, float[] b, int rows, int c)
    {
        var y = new double[rows * c];
        var mean = new double[rows];
        var rstd = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double mu = 0, var = 0;
            for (int j = 0; j < c; j++)
                mu += x[r * c + j];
            mu /= c;
            for (int j = 0; j < c; j++)
                var += (x[r * c + j] - mu) * (x[r * c + j] - mu);
            double s = 1 / Math.Sqrt(var / c + LayerNorm.Epsilon);
            for (int j = 0; j < c; j++)
                y[r * c + j] = (x[r * c + j] - mu) * s * w[j] + b[j];
            mean[r] = mu;
            rstd[r] = s;
        }
        return (y, mean, rstd);
    }

    /// <summary>24 channels: whole vectors of 8; 20: one a lane. warpPerRow: the GPU's kernel on the CPU accelerator.</summary>
    [Theory]
    [InlineData(false, 24)]
    [InlineData(true, 24)]
    [InlineData(false, 20)]
    [InlineData(true, 20)]
    public void LayerNorm_forward_matches_fp64_and_copies_its_input(bool warpPerRow, int c)
    {
        int rows = 6;
        var x = Random(1, rows * c, 2f);
        var wb = Random(2, c, 0.5f).Select(v => v + 1f).Concat(Random(3, c, 0.1f)).ToArray();
        using var dx = Upload(context, x);
        using var dwb = Upload(context, wb);
        using var y = Upload(context, new float[rows * c]);
        using var mean = Upload(context, new float[rows]);
        using var rstd = Upload(context, new float[rows]);
        using var copy = Upload(context, new float[rows * c]);
        LayerNorm.Forward<float, FloatConvert>(new DeviceLauncher(context) { UseIlgpuOnCpu = warpPerRow }, rows, c, dx.View, dwb.View, y.View, mean.View, rstd.View, copy.View);
        var reference = LayerNormReference(x, wb[..c], wb[c..], rows, c);
        RelativeError(Download(context, y), reference.Y).ShouldBeLessThan(1e-5);
        RelativeError(Download(context, rstd), reference.Rstd).ShouldBeLessThan(1e-5);
        Download(context, copy).ShouldBe(x);
    }

    /// <summary>Central differences of L = Σ dy ∘ LayerNorm(x) on the fp64 reference.</summary>
    private static double Loss(float[] x, float[] wb, float[] dy, int rows, int c)
    {
        var y = LayerNormReference(x, wb[..c], wb[c..], rows, c).Y;
        return y.Select((v, i) => v * dy[i]).Sum();
    }

    private static double[] FiniteDifferences(float[] values, Func<double> loss, double h = 1e-2)
    {
        var grad = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            float saved = values[i];
            values[i] = (float)(saved + h);
            double plus = loss();
            values[i] = (float)(saved - h);
            double minus = loss();
            values[i] = saved;
            grad[i] = (plus - minus) / (2 * h);
        }
        return grad;
    }

    /// <summary>
    /// warpPerRow: the GPU's kernel on the CPU accelerator, whose groups of 4 warps (4 lanes each) take 16 rows and sum
    /// dweight | dbias in shared memory; 37 rows leave the last group part empty. 16 channels: vectors of 8; 12: one a lane.
    /// </summary>
    [Theory]
    [InlineData(false, 5, 16)]
    [InlineData(true, 5, 16)]
    [InlineData(true, 37, 16)]
    [InlineData(false, 37, 12)]
    [InlineData(true, 37, 12)]
    public void LayerNorm_backward_matches_finite_differences_and_accumulates(bool warpPerRow, int rows, int c)
    {
        var x = Random(4, rows * c, 1.5f);
        var wb = Random(5, c, 0.3f).Select(v => v + 1f).Concat(Random(6, c, 0.2f)).ToArray();
        var dy = Random(7, rows * c);
        // warpPerRow: the GPU's kernels, run by ILGPU on the CPU accelerator (warps of 4 lanes there).
        var launcher = new DeviceLauncher(context) { UseIlgpuOnCpu = warpPerRow };
        using var gemm = Gemm.Create(launcher);
        using var dX = Upload(context, x);
        using var dWb = Upload(context, wb);
        using var y = Upload(context, new float[rows * c]);
        using var mean = Upload(context, new float[rows]);
        using var rstd = Upload(context, new float[rows]);
        using var dDy = Upload(context, dy);
        using var dxOut = Upload(context, Enumerable.Repeat(0.25f, rows * c).ToArray());
        using var dxCompute = Upload(context, new float[rows * c]);
        using var gradWb = Upload(context, new float[2 * c]);
        using var scratch = Upload(context, new float[rows * 2 * c]);
        using var ones = Upload(context, Enumerable.Repeat(1f, rows).ToArray());
        LayerNorm.Forward<float, FloatConvert>(launcher, rows, c, dX.View, dWb.View, y.View, mean.View, rstd.View, default);
        LayerNorm.Backward<float, FloatConvert>(launcher, gemm, rows, c, dDy.View, dX.View, dWb.View, mean.View, rstd.View,
            dxOut.View, dxCompute.View, accumulate: true, gradWb.View, scratch.View, ones.View);

        var expectedDx = FiniteDifferences(x, () => Loss(x, wb, dy, rows, c)).Select(g => g + 0.25).ToArray();
        var expectedDwb = FiniteDifferences(wb, () => Loss(x, wb, dy, rows, c));
        RelativeError(Download(context, dxOut), expectedDx).ShouldBeLessThan(1e-3);
        Download(context, dxCompute).ShouldBe(Download(context, dxOut));
        RelativeError(Download(context, y), LayerNormReference(x, wb[..c], wb[c..], rows, c).Y).ShouldBeLessThan(1e-5);
        RelativeError(Download(context, gradWb), expectedDwb).ShouldBeLessThan(1e-3);
    }

    /// <summary>
    /// The host loops against the GPU's kernels on the CPU accelerator, in fp16: at 40 channels the grouped kernel (dweight |
    /// dbias summed in shared memory), at 6152 (2 · 6152 floats of sums a warp exceed 48 KB) the warp-per-row kernel with a
    /// partial row each. dx, its fp16 copy and dweight | dbias agree.
    /// </summary>
    [Theory]
    [InlineData(40)]
    [InlineData(6152)]
    public void LayerNorm_backward_paths_agree(int c)
    {
        int rows = 9;
        var x = Random(15, rows * c, 1.5f);
        var wb = Random(16, c, 0.3f).Select(v => v + 1f).Concat(Random(17, c, 0.2f)).ToArray();
        var dy = Random(18, rows * c).Select(v => (Half)v).ToArray();
        (float[] Dx, Half[] DxCompute, float[] Dwb) Run(bool ilgpu)
        {
            var launcher = new DeviceLauncher(context) { UseIlgpuOnCpu = ilgpu };
            using var gemm = Gemm.Create(launcher);
            using var dX = Upload(context, x);
            using var dWb = Upload(context, wb);
            using var y = Upload(context, new Half[rows * c]);
            using var mean = Upload(context, new float[rows]);
            using var rstd = Upload(context, new float[rows]);
            using var dDy = Upload(context, dy);
            using var dxOut = Upload(context, Random(19, rows * c));
            using var dxCompute = Upload(context, new Half[rows * c]);
            using var gradWb = Upload(context, new float[2 * c]);
            using var scratch = Upload(context, new float[rows * 2 * c]);
            using var ones = Upload(context, Enumerable.Repeat(1f, rows).ToArray());
            LayerNorm.Forward<Half, HalfConvert>(launcher, rows, c, dX.View, dWb.View, y.View, mean.View, rstd.View, default);
            LayerNorm.Backward<Half, HalfConvert>(launcher, gemm, rows, c, dDy.View, dX.View, dWb.View, mean.View, rstd.View,
                dxOut.View, dxCompute.View, accumulate: true, gradWb.View, scratch.View, ones.View);
            return (Download(context, dxOut), Download(context, dxCompute), Download(context, gradWb));
        }
        var host = Run(ilgpu: false);
        var compiled = Run(ilgpu: true);
        RelativeError(compiled.Dx, ToDouble(host.Dx)).ShouldBeLessThan(1e-5);
        RelativeError(compiled.Dwb, ToDouble(host.Dwb)).ShouldBeLessThan(1e-5);
        RelativeError(compiled.DxCompute.Select(h => (float)h).ToArray(), ToDouble(host.DxCompute.Select(h => (float)h))).ShouldBeLessThan(1e-3);
    }

    /// <summary>Width 16: a thread per 8 outputs; 10: a thread per output. ilgpu: the ILGPU-compiled kernel on the CPU accelerator.</summary>
    [Theory]
    [InlineData(false, 10)]
    [InlineData(true, 10)]
    [InlineData(false, 16)]
    [InlineData(true, 16)]
    public void SwiGlu_forward_and_backward_match_fp64(bool ilgpu, int width)
    {
        int rows = 4;
        var x12 = Random(8, rows * 2 * width, 2f);
        var dh = Random(9, rows * width);
        var launcher = new DeviceLauncher(context) { UseIlgpuOnCpu = ilgpu };
        using var dX12 = Upload(context, x12);
        using var hidden = Upload(context, new float[rows * width]);
        using var dHidden = Upload(context, dh);
        using var grad = Upload(context, new float[rows * 2 * width]);
        SwiGlu.Forward<float, FloatConvert>(launcher, rows, width, dX12.View, hidden.View);
        SwiGlu.Backward<float, FloatConvert>(launcher, rows, width, dX12.View, dHidden.View, grad.View);

        static double Silu(double u) => u / (1 + Math.Exp(-u));
        double Loss() => Enumerable.Range(0, rows * width).Sum(i =>
        {
            int n = i / width, j = i % width;
            return dh[i] * Silu(x12[n * 2 * width + j]) * x12[n * 2 * width + width + j];
        });
        var expectedHidden = Enumerable.Range(0, rows * width).Select(i =>
        {
            int n = i / width, j = i % width;
            return Silu(x12[n * 2 * width + j]) * x12[n * 2 * width + width + j];
        }).ToArray();
        RelativeError(Download(context, hidden), expectedHidden).ShouldBeLessThan(1e-6);
        RelativeError(Download(context, grad), FiniteDifferences(x12, Loss, 1e-3)).ShouldBeLessThan(1e-4);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CrossEntropy_loss_accuracy_and_gradient_match_fp64(bool warpPerRow)
    {
        int rows = 5, vocab = 7;
        var logits = Random(10, rows * vocab, 3f);
        logits[3 * vocab + 2] = logits[3 * vocab + 5] = 50f;
        var targets = new[] { 0, 6, 3, 2, 1 };
        var launcher = new DeviceLauncher(context) { UseIlgpuOnCpu = warpPerRow };
        using var dLogits = Upload(context, logits);
        using var dTargets = Upload(context, targets);
        using var rowLoss = Upload(context, new float[rows]);
        using var rowCorrect = Upload(context, new float[rows]);
        using var scale = Upload(context, new[] { 8f });
        CrossEntropy.ForwardBackward<float, FloatConvert>(launcher, rows, vocab, dLogits.View, dTargets.View, rowLoss.View, rowCorrect.View, scale.View, writeGradient: true);

        var expectedLoss = new double[rows];
        var expectedGrad = new double[rows * vocab];
        var expectedCorrect = new float[rows];
        for (int n = 0; n < rows; n++)
        {
            var z = logits.Skip(n * vocab).Take(vocab).Select(v => (double)v).ToArray();
            double max = z.Max(), sum = z.Sum(v => Math.Exp(v - max));
            expectedLoss[n] = max + Math.Log(sum) - z[targets[n]];
            expectedCorrect[n] = Array.IndexOf(z, max) == targets[n] ? 1f : 0f;
            for (int v = 0; v < vocab; v++)
                expectedGrad[n * vocab + v] = (Math.Exp(z[v] - max) / sum - (v == targets[n] ? 1 : 0)) * 8.0 / rows;
        }
        RelativeError(Download(context, rowLoss), expectedLoss).ShouldBeLessThan(1e-6);
        expectedCorrect[3].ShouldBe(1f, "a tie goes to the first index");
        Download(context, rowCorrect).ShouldBe(expectedCorrect);
        RelativeError(Download(context, dLogits), expectedGrad).ShouldBeLessThan(1e-6);
    }

    [Fact]
    public void Embedding_forward_and_deterministic_backward_match_naive_sums()
    {
        int batch = 3, seq = 4, c = 5, vocab = 6;
        var tokens = new[] { 2, 2, 5, 0, 2, 1, 1, 5, 2, 0, 0, 2 };
        var table = Random(11, vocab * c);
        var positions = Random(12, seq * c);
        var dOut = Random(13, batch * seq * c);
        var launcher = new DeviceLauncher(context);
        using var gemm = Gemm.Create(launcher);
        using var dTokens = Upload(context, tokens);
        using var dTable = Upload(context, table);
        using var dPositions = Upload(context, positions);
        using var output = Upload(context, new float[batch * seq * c]);
        using var dDOut = Upload(context, dOut);
        using var gradTable = Upload(context, Enumerable.Repeat(9f, vocab * c).ToArray());
        using var gradPositions = Upload(context, new float[seq * c]);
        using var order = Upload(context, new int[Embedding.SortScratch(batch * seq)]);
        using var ones = Upload(context, Enumerable.Repeat(1f, batch).ToArray());
        Embedding.Forward(launcher, batch, seq, c, dTokens.View, dTable.View, dPositions.View, output.View);
        Embedding.Backward(launcher, gemm, batch, seq, c, dTokens.View, dDOut.View, gradTable.View, gradPositions.View, order.View, ones.View);

        var expectedOut = new double[batch * seq * c];
        var expectedTable = new double[vocab * c];
        var expectedPositions = new double[seq * c];
        for (int n = 0; n < batch * seq; n++)
        {
            for (int j = 0; j < c; j++)
            {
                expectedOut[n * c + j] = table[tokens[n] * c + j] + positions[n % seq * c + j];
                expectedTable[tokens[n] * c + j] += dOut[n * c + j];
                expectedPositions[n % seq * c + j] += dOut[n * c + j];
            }
        }
        RelativeError(Download(context, output), expectedOut).ShouldBeLessThan(1e-7);
        var grad = Download(context, gradTable);
        RelativeError(grad, expectedTable).ShouldBeLessThan(1e-6);
        grad.Skip(3 * c).Take(4 * c - 3 * c).ShouldAllBe(v => v == 0f, "token 3 is absent: its row is zero, not stale");
        RelativeError(Download(context, gradPositions), expectedPositions).ShouldBeLessThan(1e-6);
    }

    /// <summary>16 channels: a thread moves 8 of each; 12: one. ilgpu: the ILGPU-compiled kernels on the CPU accelerator.</summary>
    [Theory]
    [InlineData(false, 16)]
    [InlineData(true, 16)]
    [InlineData(false, 12)]
    [InlineData(true, 12)]
    public void Attention_split_then_merge_is_the_identity(bool ilgpu, int c)
    {
        int rows = 6;
        var qkv = Random(14, rows * 3 * c).Select(v => (Half)v).ToArray();
        var launcher = new DeviceLauncher(context) { UseIlgpuOnCpu = ilgpu };
        using var dQkv = Upload(context, qkv);
        using var q = Upload(context, new Half[rows * c]);
        using var k = Upload(context, new Half[rows * c]);
        using var v = Upload(context, new Half[rows * c]);
        using var merged = Upload(context, new Half[rows * 3 * c]);
        CausalSelfAttention.Split<Half>(launcher, rows, c, dQkv.View, q.View, k.View, v.View);
        CausalSelfAttention.Merge<Half>(launcher, rows, c, q.View, k.View, v.View, merged.View);
        Download(context, merged).ShouldBe(qkv);
        Download(context, k)[c + 1].ShouldBe(qkv[3 * c + c + 1]);
    }
}
