using XFormers.Reference;

namespace XFormers.Tests;

/// <summary>
/// Gradients checked against central finite differences of the loss L = Σ dO ∘ O, on tiny float32 problems:
/// the generated backward kernels against differences of the generated forward kernel, and the fp64
/// reference's backward against differences of its own forward (so the oracle is checked too).
/// </summary>
[Collection(CpuCollection.Name)]
public class FiniteDifferenceTests(CpuContextFixture fixture)
{
    public static TheoryData<MaskKind, BiasKind> Kinds() => new()
    {
        { MaskKind.None, BiasKind.None },
        { MaskKind.Causal, BiasKind.Tensor },
        { MaskKind.CausalFromBottomRight, BiasKind.Alibi },
        { MaskKind.BlockDiagonalCausal, BiasKind.Tensor },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void KernelGradientsMatchFiniteDifferences(MaskKind mask, BiasKind bias)
    {
        var ctx = fixture.Context;
        const int B = 1, Mq = 6, Mkv = 5, Hq = 2, Hkv = 1, K = 16;
        int[] qShape = { B, Mq, Hq, K }, kShape = { B, Mkv, Hkv, K };
        var q = HostRandom.Normal(1, Mq * Hq * K);
        var k = HostRandom.Normal(2, Mkv * Hkv * K);
        var v = HostRandom.Normal(3, Mkv * Hkv * K);
        var dO = HostRandom.Normal(4, Mq * Hq * K);
        var b = HostRandom.Normal(5, Hq * Mq * Mkv);
        AttentionBias? maskBias = mask switch
        {
            MaskKind.None => null,
            MaskKind.Causal => new LowerTriangularMask(),
            MaskKind.CausalFromBottomRight => new LowerTriangularFromBottomRightMask(),
            _ => BlockDiagonalCausalMask.FromSeqlens(new[] { 2, 4 }, new[] { 3, 2 }),
        };

        using var dOut = Tensor<float>.FromArray(ctx, dO, qShape);
        double Loss(float[] qv, float[] kv, float[] vv, float[] bv)
        {
            using var qt = Tensor<float>.FromArray(ctx, qv, qShape);
            using var kt = Tensor<float>.FromArray(ctx, kv, kShape);
            using var vt = Tensor<float>.FromArray(ctx, vv, kShape);
            using var bt = Tensor<float>.FromArray(ctx, bv, B, Hq, Mq, Mkv);
            using var o = Fmha.MemoryEfficientAttention(qt, kt, vt, Compose(maskBias, bias, bt, Hq, requiresGrad: false));
            return o.ToFloatArray().Zip(dO, (x, y) => (double)x * y).Sum();
        }

        AttentionGradients<float> grads;
        using (var qt = Tensor<float>.FromArray(ctx, q, qShape))
        using (var kt = Tensor<float>.FromArray(ctx, k, kShape))
        using (var vt = Tensor<float>.FromArray(ctx, v, kShape))
        using (var bt = Tensor<float>.FromArray(ctx, b, B, Hq, Mq, Mkv))
        {
            var attnBias = Compose(maskBias, bias, bt, Hq, requiresGrad: bias == BiasKind.Tensor);
            using var fwd = Fmha.MemoryEfficientAttentionForward(qt, kt, vt, attnBias);
            grads = Fmha.MemoryEfficientAttentionBackward(dOut, fwd, qt, kt, vt, attnBias);
        }
        using (grads)
        {
            const float h = 1e-2f;
            double Difference(float[] x, int index, Func<double> loss)
            {
                float saved = x[index];
                x[index] = saved + h;
                double plus = loss();
                x[index] = saved - h;
                double minus = loss();
                x[index] = saved;
                return (plus - minus) / (2 * h);
            }

            void Check(string name, float[] x, float[] analytic)
            {
                var random = new Random(name.Length);
                for (int n = 0; n < 12; n++)
                {
                    int index = random.Next(x.Length);
                    double numeric = Difference(x, index, () => Loss(q, k, v, b));
                    Math.Abs(numeric - analytic[index]).ShouldBeLessThan(2e-3 * Math.Max(1, Math.Abs(numeric)), $"d{name}[{index}]");
                }
            }

            Check("Q", q, grads.Query.ToFloatArray());
            Check("K", k, grads.Key.ToFloatArray());
            Check("V", v, grads.Value.ToFloatArray());
            if (bias == BiasKind.Tensor)
                Check("Bias", b, grads.Bias!.ToFloatArray());
        }
    }

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferences()
    {
        var p = new ReferenceAttention.Problem(1, 4, 5, 2, 1, 8, 0.3, MaskKind.CausalFromBottomRight,
            Bias: HostRandom.Normal(9, 2 * 4 * 5).Select(x => (double)x).ToArray(), AlibiSlopes: new[] { 0.5, 0.25 });
        double[] Rand(int seed, int n) => HostRandom.Normal(seed, n).Select(x => (double)x).ToArray();
        var q = Rand(1, 4 * 2 * 8);
        var k = Rand(2, 5 * 8);
        var v = Rand(3, 5 * 8);
        var dO = Rand(4, 4 * 2 * 8);
        var grads = ReferenceAttention.Backward(p, q, k, v, dO);
        double Loss(ReferenceAttention.Problem problem) => ReferenceAttention.Forward(problem, q, k, v).Output.Zip(dO, (x, y) => x * y).Sum();
        const double h = 1e-5;
        void Check(double[] x, double[] analytic, Func<double> loss)
        {
            for (int i = 0; i < x.Length; i++)
            {
                double saved = x[i];
                x[i] = saved + h;
                double plus = loss();
                x[i] = saved - h;
                double minus = loss();
                x[i] = saved;
                Math.Abs((plus - minus) / (2 * h) - analytic[i]).ShouldBeLessThan(1e-6);
            }
        }
        Check(q, grads.Query, () => Loss(p));
        Check(k, grads.Key, () => Loss(p));
        Check(v, grads.Value, () => Loss(p));
        Check(p.Bias!, grads.Bias, () => Loss(p));
    }

    private static AttentionBias? Compose(AttentionBias? mask, BiasKind bias, Tensor<float> tensor, int heads, bool requiresGrad) => bias switch
    {
        BiasKind.None => mask,
        BiasKind.Tensor => (mask ?? NoMask.Instance).WithTensorBias(tensor, requiresGrad),
        _ => (mask ?? NoMask.Instance).WithAlibi(AlibiBias.DefaultSlopes(heads)),
    };
}
