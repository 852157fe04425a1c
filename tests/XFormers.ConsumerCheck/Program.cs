using System;
using System.Linq;
using XFormers;
using XFormers.Dsl;
using XFormers.Reference;
using Half = ILGPU.Half;

// Every variant this assembly declares, forward and backward, against the fp64 reference.
using var context = XFormersContext.Create();
Console.WriteLine($"accelerator: {context.Description}");
int failures = 0;
foreach (var kernel in AttentionRegistry.Variants.Where(k => k.DeclaringAssembly == typeof(Variants).Assembly))
{
    var v = kernel.Variant;
    double error = v.DType switch
    {
        DType.Float32 => Check.Run<float>(context, kernel),
        DType.Float16 => Check.Run<Half>(context, kernel),
        _ => Check.Run<BFloat16>(context, kernel),
    };
    double tolerance = ReferenceAttention.Tolerance(v.DType, v.HeadDim);
    bool ok = error <= tolerance;
    failures += ok ? 0 : 1;
    Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {v.Name,-45} {v.Mask,-21} {v.Bias,-6} {v.DType,-8} max error {error:E2} (tolerance {tolerance:E1})");
}
Console.WriteLine(failures == 0 ? "all variants match the reference" : $"{failures} variants missed the reference");
return failures == 0 ? 0 : 1;

/// <summary>One variant of each mask × bias kind, and grouped-query ones.</summary>
public static partial class Variants
{
    [Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float32)]
    public static partial AttentionKernel Plain();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    public static partial AttentionKernel PlainTensor();

    [Attention(Mask = MaskKind.None, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float16)]
    public static partial AttentionKernel PlainAlibi();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float16)]
    public static partial AttentionKernel Causal();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    public static partial AttentionKernel CausalTensor();

    [Attention(Mask = MaskKind.Causal, Bias = BiasKind.Alibi, HeadDim = 64, DType = DType.BFloat16)]
    public static partial AttentionKernel CausalAlibi();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.None, HeadDim = 32, DType = DType.Float32, BlockM = 32, BlockN = 16)]
    public static partial AttentionKernel BottomRight();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float16)]
    public static partial AttentionKernel BottomRightTensor();

    [Attention(Mask = MaskKind.CausalFromBottomRight, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
    public static partial AttentionKernel BottomRightAlibi();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.None, HeadDim = 64, DType = DType.Float32)]
    public static partial AttentionKernel Packed();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    public static partial AttentionKernel PackedTensor();

    [Attention(Mask = MaskKind.BlockDiagonal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.BFloat16)]
    public static partial AttentionKernel PackedAlibi();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.None, HeadDim = 128, DType = DType.Float16)]
    public static partial AttentionKernel PackedCausal();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
    public static partial AttentionKernel PackedCausalTensor();

    [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
    public static partial AttentionKernel PackedCausalAlibi();

    [Attention(Mask = MaskKind.BlockDiagonalCausalLocal, Bias = BiasKind.Alibi, HeadDim = 32, DType = DType.Float32)]
    public static partial AttentionKernel PackedLocalAlibi();

    /// <summary>Grouped-query: 8 query heads over 2 KV heads, fixed at build time.</summary>
    [Attention(Mask = MaskKind.Causal, HeadDim = 64, DType = DType.Float16, Heads = 8, KvHeads = 2)]
    public static partial AttentionKernel GroupedQuery();

    /// <summary>Multi-query: 4 query heads over one KV head, in float32.</summary>
    [Attention(Mask = MaskKind.None, HeadDim = 32, DType = DType.Float32, Heads = 4, KvHeads = 1)]
    public static partial AttentionKernel MultiQuery();
}

internal static class Check
{
    /// <summary>Runs the variant at a ragged shape fitting its mask; returns the worst error over O, LSE, dQ, dK, dV, dBias.</summary>
    public static double Run<T>(XFormersContext context, AttentionKernel kernel)
        where T : unmanaged
    {
        var v = kernel.Variant;
        int hq = v.Heads > 0 ? v.Heads : 2, hkv = v.KvHeads > 0 ? v.KvHeads : hq, k = v.HeadDim;
        bool packed = v.Mask.IsBlockDiagonal();
        int[] qLens = { 5, 0, 23, 1 }, kvLens = { 7, 3, 19, 1 };
        int mq = packed ? qLens.Sum() : 29, mkv = packed ? kvLens.Sum() : 21;
        using var q = Tensor<T>.RandomNormal(context, 1, 1f, 1, mq, hq, k);
        using var key = Tensor<T>.RandomNormal(context, 2, 1f, 1, mkv, hkv, k);
        using var value = Tensor<T>.RandomNormal(context, 3, 1f, 1, mkv, hkv, k);
        using var dO = Tensor<T>.RandomNormal(context, 4, 1f, 1, mq, hq, k);
        using var biasTensor = Tensor<T>.RandomNormal(context, 5, 1f, 1, hq, mq, mkv);
        AttentionBias mask = v.Mask switch
        {
            MaskKind.None => NoMask.Instance,
            MaskKind.Causal => new LowerTriangularMask(),
            MaskKind.CausalFromBottomRight => new LowerTriangularFromBottomRightMask(),
            MaskKind.BlockDiagonal => BlockDiagonalMask.FromSeqlens(qLens, kvLens),
            MaskKind.BlockDiagonalCausal => BlockDiagonalMask.FromSeqlens(qLens, kvLens).MakeCausal(),
            MaskKind.BlockDiagonalCausalLocal => BlockDiagonalMask.FromSeqlens(qLens, kvLens).MakeCausal().MakeLocalAttention(4),
            _ => throw new NotSupportedException($"no inputs for {v.Mask}"),
        };
        AttentionBias bias = v.Bias switch
        {
            BiasKind.None => mask,
            BiasKind.Tensor => mask.WithTensorBias(biasTensor, requiresGrad: v.BiasGradient),
            _ => mask.WithAlibi(AlibiBias.DefaultSlopes(hq)),
        };

        using var forward = kernel.Forward(q, key, value, bias);
        using var grads = kernel.Backward(dO, forward, q, key, value, bias);
        var problem = ReferenceAttention.ProblemFor(q, key, bias);
        double[] qd = q.ToDoubleArray(), kd = key.ToDoubleArray(), vd = value.ToDoubleArray();
        var expected = ReferenceAttention.Forward(problem, qd, kd, vd);
        var expectedGrads = ReferenceAttention.Backward(problem, qd, kd, vd, dO.ToDoubleArray());
        double worst = Math.Max(Error(forward.Output, expected.Output), Error(forward.Lse, expected.Lse));
        worst = Math.Max(worst, Error(grads.Query, expectedGrads.Query));
        worst = Math.Max(worst, Error(grads.Key, expectedGrads.Key));
        worst = Math.Max(worst, Error(grads.Value, expectedGrads.Value));
        if (grads.Bias is not null)
            worst = Math.Max(worst, Error(grads.Bias, expectedGrads.Bias));
        return worst;
    }

    private static double Error<TE>(Tensor<TE> actual, double[] expected)
        where TE : unmanaged => ReferenceAttention.ScaledError(actual.ToDoubleArray(), expected);
}
