namespace XFormers.Tests;

/// <summary>Bad inputs fail before any kernel runs, with an exception that names the argument.</summary>
[Collection(CpuCollection.Name)]
public class ValidationTests(CpuContextFixture fixture)
{
    private XFormersContext Ctx => fixture.Context;

    private Tensor<float> Rand(params int[] shape) => Tensor<float>.RandomNormal(Ctx, 11, 1f, shape);

    private static void ShouldNameArgument(Action action, string argument, params string[] messageParts)
    {
        var ex = Should.Throw<ArgumentException>(action);
        ex.ParamName.ShouldBe(argument);
        foreach (var part in messageParts)
            ex.Message.ShouldContain(part);
    }

    [Fact]
    public void QueryOfWrongRank()
    {
        using var q = Rand(2, 8, 32);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, q, q), "query", "[2, 8, 32]", "[B, M, H, K]");
    }

    [Fact]
    public void KeyBatchDiffers()
    {
        using var q = Rand(2, 8, 2, 32);
        using var k = Rand(1, 8, 2, 32);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, k, k), "key", "batch 1", "query's 2");
    }

    [Fact]
    public void ValueShapeDiffersFromKey()
    {
        using var q = Rand(1, 8, 2, 32);
        using var k = Rand(1, 8, 2, 32);
        using var v = Rand(1, 9, 2, 32);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, k, v), "value", "[1, 9, 2, 32]", "[1, 8, 2, 32]");
    }

    [Fact]
    public void KeyHeadDimDiffers()
    {
        using var q = Rand(1, 8, 2, 32);
        using var k = Rand(1, 8, 2, 16);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, k, k), "key", "head dim 16", "query's 32");
    }

    [Fact]
    public void KeyHeadsDoNotDivideQueryHeads()
    {
        using var q = Rand(1, 8, 4, 32);
        using var k = Rand(1, 8, 3, 32);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, k, k), "key", "3 heads", "4 heads");
    }

    [Fact]
    public void HeadDimWithoutVariantListsTheRegisteredOnes()
    {
        using var q = Rand(1, 8, 2, 40);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, q, q), "query", "head dim 40", "16, 32, 48, 64, 128", "[Attention(");
    }

    [Fact]
    public void HeadDimNoDeclarationTakesNamesTheNearestDeclarableOne()
    {
        using var q = Rand(1, 8, 2, 50);
        ShouldNameArgument(
            () => Fmha.MemoryEfficientAttention(q, q, q), "query", "head dim 50", "multiple of 8 from 8 to 256", "nearest declarable head dim is 56",
            "[Attention(Mask = MaskKind.None, Bias = BiasKind.None, HeadDim = 56, DType = DType.Float32)]", "zero-pad", "last 6 columns");
        using var wide = Rand(1, 2, 1, 260);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(wide, wide, wide), "query", "head dim 260", "from 8 to 256");
    }

    [Fact]
    public void SeqlensThatDoNotSumToTheTokens()
    {
        using var q = Rand(1, 10, 2, 32);
        var mask = BlockDiagonalMask.FromSeqlens(new[] { 4, 5 });
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, q, q, mask), "attnBias", "sum to 9", "has 10");
    }

    [Fact]
    public void KeySeqlensThatDoNotSumToTheKeyTokens()
    {
        using var q = Rand(1, 9, 2, 32);
        using var k = Rand(1, 7, 2, 32);
        var mask = BlockDiagonalMask.FromSeqlens(new[] { 4, 5 }, new[] { 3, 3 });
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, k, k, mask), "attnBias", "sum to 6", "has 7");
    }

    [Fact]
    public void BlockDiagonalNeedsBatchOne()
    {
        using var q = Rand(2, 9, 2, 32);
        var mask = BlockDiagonalMask.FromSeqlens(new[] { 4, 5 });
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, q, q, mask), "query", "batch 1");
    }

    [Fact]
    public void BiasOfWrongShape()
    {
        using var q = Rand(2, 8, 2, 32);
        using var bias = Rand(2, 2, 8, 7);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, q, q, new TensorBias<float>(bias)), "attnBias", "[2, 2, 8, 7]", "[2, 2, 8, 8]");
    }

    [Fact]
    public void BiasOfOtherElementType()
    {
        using var q = Tensor<Half>.RandomNormal(Ctx, 1, 1f, 1, 8, 2, 32);
        using var bias = Rand(1, 2, 8, 8);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, q, q, new TensorBias<float>(bias)), "attnBias", "element type", "Half");
    }

    [Fact]
    public void BiasGradientNeedsFullShape()
    {
        using var q = Rand(2, 8, 2, 32);
        using var bias = Rand(1, 2, 8, 8);
        using var fwd = Fmha.MemoryEfficientAttentionForward(q, q, q, new TensorBias<float>(bias));
        ShouldNameArgument(
            () => Fmha.MemoryEfficientAttentionBackward(q, fwd, q, q, q, new TensorBias<float>(bias, requiresGrad: true)),
            "attnBias", "full shape", "[1, 2, 8, 8]");
    }

    [Fact]
    public void AlibiSlopesMustMatchHeads()
    {
        using var q = Rand(1, 8, 4, 32);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, q, q, AlibiBias.ForHeads(8)), "attnBias", "8 slopes", "4 heads");
    }

    [Fact]
    public void ScaleMustBeFinite()
    {
        using var q = Rand(1, 8, 2, 32);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, q, q, scale: float.NaN), "scale");
    }

    [Fact]
    public void TensorsOnAnotherContext()
    {
        using var other = XFormersContext.CreateCpu(1);
        using var q = Rand(1, 8, 2, 32);
        using var k = Tensor<float>.RandomNormal(other, 1, 1f, 1, 8, 2, 32);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttention(q, k, k), "key", "another context");
    }

    [Fact]
    public void GradientOfWrongShape()
    {
        using var q = Rand(1, 8, 2, 32);
        using var fwd = Fmha.MemoryEfficientAttentionForward(q, q, q);
        using var dO = Rand(1, 8, 2, 16);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttentionBackward(dO, fwd, q, q, q), "gradOutput", "[1, 8, 2, 16]");
    }

    [Fact]
    public void KernelThatDoesNotFitTheInputs()
    {
        using var q = Rand(1, 8, 2, 32);
        var causal = AttentionRegistry.Find(MaskKind.Causal, BiasKind.None, DType.Float32, 32, 2, 2)!;
        ShouldNameArgument(() => causal.Forward(q, q, q), "kernel", "mask is Causal", "None");
    }

    [Fact]
    public void OutputThatAliasesAnInputIsRefused()
    {
        using var q = Rand(1, 8, 2, 32);
        using var lse = Tensor<float>.Empty(Ctx, 1, 2, 8);
        ShouldNameArgument(() => Fmha.MemoryEfficientAttentionForward(q, q, q, q, lse), "output", "shares storage");
    }

    [Fact]
    public void AFailedCallLeavesPreallocatedOutputsUntouched()
    {
        using var q = Rand(1, 8, 2, 32);
        using var output = Tensor<float>.FromFloats(Ctx, Enumerable.Repeat(7f, 8 * 2 * 32).ToArray(), 1, 8, 2, 32);
        using var lse = Tensor<float>.FromFloats(Ctx, Enumerable.Repeat(7f, 16).ToArray(), 1, 2, 8);
        var badMask = BlockDiagonalMask.FromSeqlens(new[] { 3, 3 });
        Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttentionForward(q, q, q, output, lse, badMask));
        output.ToFloatArray().ShouldAllBe(x => x == 7f);
        lse.ToFloatArray().ShouldAllBe(x => x == 7f);
    }

    [Fact]
    public void SeqlensMustBeNonNegativeAndPaired()
    {
        Should.Throw<ArgumentException>(() => BlockDiagonalMask.FromSeqlens(new[] { 3, -1 })).ParamName.ShouldBe("qSeqlen");
        Should.Throw<ArgumentException>(() => BlockDiagonalMask.FromSeqlens(new[] { 3, 1 }, new[] { 3 })).ParamName.ShouldBe("kvSeqlen");
        Should.Throw<ArgumentException>(() => BlockDiagonalMask.FromSeqlens(Array.Empty<int>())).ParamName.ShouldBe("qSeqlen");
    }

    [Fact]
    public void DeviceVariableIsParsed()
    {
        string? saved = Environment.GetEnvironmentVariable(XFormersContext.DeviceVariable);
        try
        {
            Environment.SetEnvironmentVariable(XFormersContext.DeviceVariable, "cpu");
            XFormersContext.PreferenceFromEnvironment().ShouldBe(AcceleratorPreference.Cpu);
            Environment.SetEnvironmentVariable(XFormersContext.DeviceVariable, "CUDA");
            XFormersContext.PreferenceFromEnvironment().ShouldBe(AcceleratorPreference.Cuda);
            Environment.SetEnvironmentVariable(XFormersContext.DeviceVariable, "tpu");
            Should.Throw<ArgumentException>(() => XFormersContext.PreferenceFromEnvironment()).ParamName.ShouldBe(XFormersContext.DeviceVariable);
        }
        finally
        {
            Environment.SetEnvironmentVariable(XFormersContext.DeviceVariable, saved);
        }
    }
}
