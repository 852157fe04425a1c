using XFormers.Reference;

namespace XFormers.Tests;

/// <summary>One attention problem: shapes, mask and bias; builds seeded inputs and compares every output with the fp64 reference.</summary>
public sealed record AttentionCase(
    int Batch, int Mq, int Mkv, int Hq, int Hkv, int HeadDim,
    MaskKind Mask = MaskKind.None, BiasKind Bias = BiasKind.None,
    int[]? QSeqlens = null, int[]? KvSeqlens = null,
    bool BiasRequiresGrad = false, bool BroadcastBias = false, bool FiveD = false, int Seed = 1, int Window = 0)
{
    public override string ToString() =>
        $"B{Batch} Mq{Mq} Mkv{Mkv} H{Hq}/{Hkv} K{HeadDim} {Mask}/{Bias}" + (Window > 0 ? $" window {Window}" : "") +
        (QSeqlens is null ? "" : $" q[{string.Join(",", QSeqlens)}] kv[{string.Join(",", KvSeqlens ?? QSeqlens)}]") +
        (FiveD ? " BMGHK" : "") + (BroadcastBias ? " broadcast" : "");

    /// <summary>A packed case from seqlens (batch 1; totals become Mq and Mkv).</summary>
    public static AttentionCase Packed(int[] q, int[] kv, int hq, int hkv, int headDim, MaskKind mask, BiasKind bias = BiasKind.None, int seed = 1, int window = 0) =>
        new(1, q.Sum(), kv.Sum(), hq, hkv, headDim, mask, bias, q, kv, Seed: seed, Window: window);

    /// <summary>The mask the case names, as the runtime's <see cref="AttentionBias"/> class (null for none).</summary>
    public AttentionBias? MaskBias() => AttentionBias.ForMaskKind(Mask, QSeqlens, KvSeqlens, Window);
}

/// <summary>Max errors of one run against the fp64 reference, each divided by max(1, ‖reference‖∞).</summary>
public sealed record AttentionErrors(double Output, double Lse, double Query, double Key, double Value, double Bias)
{
    public double Max => new[] { Output, Lse, Query, Key, Value, Bias }.Max();
}

public static class AttentionCheck
{
    /// <summary>The bound on scaled errors against the fp64 reference (see <see cref="ReferenceAttention.Tolerance"/>).</summary>
    public static double Tolerance(DType dtype, int headDim = 64) => ReferenceAttention.Tolerance(dtype, headDim);

    /// <summary>Whether a 16-bit variant's backward takes the tensor-core (mma.sync) kernels on <paramref name="context"/>.</summary>
    public static bool UsesTensorCoreBackward(XFormersContext context, AttentionKernel kernel) => kernel is AttentionKernel<Half> half
        ? half.UsesTensorCoreBackward(context.Accelerator)
        : ((AttentionKernel<BFloat16>)kernel).UsesTensorCoreBackward(context.Accelerator);

    /// <summary>
    /// A 16-bit variant's forward and backward on its tensor-core kernels against fp64 (with dropout when
    /// <paramref name="dropoutP"/> &gt; 0), logged through <paramref name="log"/>. The forward rounds P (times its dropout
    /// factor) to the dtype before P·V and Pᵀ·dO (see TensorCoreForwardTests), so O and the LSE are held to twice the
    /// dtype's tolerance; the gradients (and dBias) to the SIMT path's.
    /// </summary>
    public static void TensorCoreShouldMatchFp64(
        XFormersContext context, Action<string> log, string name, AttentionKernel kernel, AttentionCase c, double dropoutP = 0, ulong dropoutSeed = 0)
    {
        UsesTensorCoreBackward(context, kernel).ShouldBeTrue();
        var errors = kernel.Variant.DType == DType.Float16
            ? Run<Half>(context, c, kernel: kernel, dropoutP: dropoutP, dropoutSeed: dropoutSeed)
            : Run<BFloat16>(context, c, kernel: kernel, dropoutP: dropoutP, dropoutSeed: dropoutSeed);
        log($"{name} {c}{(dropoutP > 0 ? $" p = {dropoutP}" : "")}: {errors}");
        Math.Max(errors.Output, errors.Lse).ShouldBeLessThan(2 * Tolerance(kernel.Variant.DType), $"{name} {c}: {errors}");
        new[] { errors.Query, errors.Key, errors.Value, errors.Bias }.Max()
            .ShouldBeLessThanOrEqualTo(Tolerance(kernel.Variant.DType, kernel.Variant.HeadDim), $"{name} {c}: {errors}");
    }

    /// <summary>
    /// Runs the case's forward (and backward) and compares with fp64; with <paramref name="dropoutP"/> &gt; 0 the kernels drop
    /// scores under <paramref name="dropoutSeed"/> and the reference is <see cref="DropoutReference"/> with the same mask.
    /// </summary>
    public static AttentionErrors Run<T>(
        XFormersContext context, AttentionCase c, bool backward = true, AttentionKernel? kernel = null, bool naive = false,
        ReferenceAttention.ScoreModFunction? scoreMod = null, ReferenceAttention.MaskModFunction? maskMod = null,
        double dropoutP = 0, ulong dropoutSeed = 0)
        where T : unmanaged
    {
        int[] qShape, kShape;
        if (c.FiveD)
        {
            // BMGHK: G = Hkv groups, Hq / Hkv query heads each, one KV head per group.
            qShape = new[] { c.Batch, c.Mq, c.Hkv, c.Hq / c.Hkv, c.HeadDim };
            kShape = new[] { c.Batch, c.Mkv, c.Hkv, 1, c.HeadDim };
        }
        else
        {
            qShape = new[] { c.Batch, c.Mq, c.Hq, c.HeadDim };
            kShape = new[] { c.Batch, c.Mkv, c.Hkv, c.HeadDim };
        }
        using var q = Tensor<T>.RandomNormal(context, c.Seed, 1f, qShape);
        using var k = Tensor<T>.RandomNormal(context, c.Seed + 1, 1f, kShape);
        using var v = Tensor<T>.RandomNormal(context, c.Seed + 2, 1f, kShape);
        using var dO = Tensor<T>.RandomNormal(context, c.Seed + 3, 1f, qShape);
        Tensor<T>? biasTensor = null;
        try
        {
            AttentionBias? mask = c.MaskBias();
            AttentionBias? attnBias = mask;
            if (c.Bias == BiasKind.Tensor)
            {
                int[] biasShape = c.BroadcastBias ? new[] { 1, c.Hq, 1, c.Mkv } : new[] { c.Batch, c.Hq, c.Mq, c.Mkv };
                var values = HostRandom.Normal(c.Seed + 4, biasShape.Aggregate(1, (a, d) => a * d), 1f);
                // A few -inf entries: the bias may mask too.
                for (int e = 5; e < values.Length; e += 23)
                    values[e] = float.NegativeInfinity;
                biasTensor = Tensor<T>.FromFloats(context, values, biasShape);
                attnBias = (mask ?? NoMask.Instance).WithTensorBias(biasTensor, c.BiasRequiresGrad);
            }
            else if (c.Bias == BiasKind.Alibi)
            {
                attnBias = (mask ?? NoMask.Instance).WithAlibi(AlibiBias.DefaultSlopes(c.Hq));
            }

            var problem = ReferenceAttention.ProblemFor(q, k, attnBias) with { ScoreMod = scoreMod, MaskMod = maskMod };
            var qd = q.ToDoubleArray();
            var kd = k.ToDoubleArray();
            var vd = v.ToDoubleArray();
            var expected = dropoutP > 0 ? DropoutReference.Forward(problem, qd, kd, vd, dropoutP, dropoutSeed) : ReferenceAttention.Forward(problem, qd, kd, vd);

            using var forward = naive ? NaiveAttention.Forward(q, k, v, attnBias)
                : kernel is null ? Fmha.MemoryEfficientAttentionForward(q, k, v, attnBias, p: dropoutP, seed: dropoutSeed)
                : kernel.Forward(q, k, v, attnBias, p: dropoutP, seed: dropoutSeed);
            double outputError = Error(forward.Output.ToDoubleArray(), expected.Output);
            double lseError = Error(forward.Lse.ToDoubleArray(), expected.Lse);
            if (!backward)
                return new AttentionErrors(outputError, lseError, 0, 0, 0, 0);

            var grads = dropoutP > 0
                ? DropoutReference.Backward(problem, qd, kd, vd, dO.ToDoubleArray(), dropoutP, dropoutSeed)
                : ReferenceAttention.Backward(problem, qd, kd, vd, dO.ToDoubleArray());
            using var actual = naive ? NaiveAttention.Backward(dO, q, k, v, attnBias)
                : kernel is null ? Fmha.MemoryEfficientAttentionBackward(dO, forward, q, k, v, attnBias, p: dropoutP, seed: dropoutSeed)
                : kernel.Backward(dO, forward, q, k, v, attnBias, p: dropoutP, seed: dropoutSeed);
            double biasError = 0;
            if (c.BiasRequiresGrad)
            {
                actual.Bias.ShouldNotBeNull();
                biasError = Error(actual.Bias!.ToDoubleArray(), grads.Bias);
            }
            return new AttentionErrors(
                outputError, lseError,
                Error(actual.Query.ToDoubleArray(), grads.Query),
                Error(actual.Key.ToDoubleArray(), grads.Key),
                Error(actual.Value.ToDoubleArray(), grads.Value),
                biasError);
        }
        finally
        {
            biasTensor?.Dispose();
        }
    }

    /// <summary>The scaled error of <see cref="ReferenceAttention.ScaledError"/>, with the lengths asserted equal.</summary>
    public static double Error(double[] actual, double[] expected)
    {
        actual.Length.ShouldBe(expected.Length);
        return ReferenceAttention.ScaledError(actual, expected);
    }
}
