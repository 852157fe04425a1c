using XFormers.Hopper;

namespace XFormers.Tests;

/// <summary>
/// The runtime's side of the sm_90a backend that a machine without a GPU can check: which path a launch takes, and
/// which of a variant's modules a grid gets.
/// </summary>
public class HopperBackendTests
{
    [Fact]
    public void TheCpuNeverTakesTheHopperPathAndInfoSaysWhichKernelsRun()
    {
        using var context = XFormersContext.CreateCpu();
        var kernel = (AttentionKernel<ILGPU.Half>)StockVariantByName("Causal_None_F16_64");
        kernel.HopperForward.ShouldNotBeNull();
        HopperLauncher.IsAvailable(context.Accelerator).ShouldBeFalse();
        kernel.UsesHopperForward(context.Accelerator).ShouldBeFalse();
        kernel.BackendOn(context.Accelerator).ShouldStartWith("forward: ILGPU");
        XFormersInfo.Collect(context).Variants.Single(v => v.Variant.Name.EndsWith(".Causal_None_F16_64", StringComparison.Ordinal))
            .Backend.ShouldNotContain("sm_90a");
    }

    [Theory]
    [InlineData("None_None_F16_64", true)]
    [InlineData("BlockDiagonalCausal_Alibi_BF16_128", true)]
    [InlineData("Causal_None_BF16_256", true)]
    [InlineData("None_None_F16_32", false)]
    [InlineData("None_None_F32_64", false)]
    // The modules have no dropout code: a dropout variant carries none (KERNEL-FEATURES.md, "Dropout").
    [InlineData("Causal_None_F16_64_Dropout", false)]
    public void StockVariantsCarryAModuleWhereThePlanAllowsOne(string name, bool expected)
    {
        var module = StockVariantByName(name) switch
        {
            AttentionKernel<ILGPU.Half> h => h.HopperForward,
            AttentionKernel<BFloat16> b => b.HopperForward,
            _ => null,
        };
        (module is not null).ShouldBe(expected);
        if (module is not null)
        {
            module.Ptx.ShouldContain(".target sm_90a");
            module.Hash.Length.ShouldBe(64);
        }
    }

    [Theory]
    [InlineData("None_None_F16_64", true)]
    [InlineData("BlockDiagonalCausal_Tensor_BF16_128", true)]
    [InlineData("Causal_None_F16_256", true)]
    [InlineData("None_None_F16_32", false)]
    [InlineData("None_None_F32_64", false)]
    [InlineData("Causal_None_BF16_128_Dropout", false)]
    public void StockVariantsCarryABackwardModuleAtHeadDimsThatAreMultiplesOf64(string name, bool expected)
    {
        var kernel = StockVariantByName(name);
        var module = kernel switch
        {
            AttentionKernel<ILGPU.Half> h => h.HopperBackward,
            AttentionKernel<BFloat16> b => b.HopperBackward,
            _ => null,
        };
        (module is not null).ShouldBe(expected);
        if (module is null)
            return;
        module.Ptx.ShouldContain(".target sm_90a");
        module.Ptx.ShouldContain(".visible .entry " + module.KeysAndValuesEntryPoint + "(");
        module.Ptx.ShouldContain(".visible .entry " + module.QueriesEntryPoint + "(");
        module.Hash.Length.ShouldBe(64);
        module.HeadDim.ShouldBe(kernel.Variant.HeadDim);
        (module.ValuesEntryPoint is not null).ShouldBe(kernel.Variant.HeadDim > 128);
        using var context = XFormersContext.CreateCpu();
        kernel.BackendOn(context.Accelerator).ShouldNotContain("sm_90a");
    }

    /// <summary>
    /// HeadDim 64: 192-row CTAs unless the grid leaves most of a wave idle, then 128-row ones (weighted by the measured
    /// 0.82 relative throughput). Cases from the forward gate on 132 multiprocessors (H200).
    /// </summary>
    [Theory]
    [InlineData(4096, 4 * 16, 192)]   // 1408 CTAs of 192 rows: 11 waves · 192 < 16 waves · 128 / 0.82
    [InlineData(2048, 2 * 8, 128)]    // 176 CTAs (2 waves, the second a third full) vs 256 (2 full waves)
    [InlineData(512, 2 * 8, 128)]     // one wave either way: the smaller CTAs finish first
    [InlineData(16384, 2 * 8, 192)]
    public void SmallGridsTakeTheSmallerCtas(int mq, int heads, int expectedBlockM)
    {
        var module = ((AttentionKernel<ILGPU.Half>)StockVariantByName("None_None_F16_64")).HopperForward!;
        module.BlockM.ShouldBe(192);
        module.SmallGrid.ShouldNotBeNull().BlockM.ShouldBe(128);
        HopperLauncher.Pick(module, mq, heads, multiprocessors: 132).BlockM.ShouldBe(expectedBlockM);
    }

    [Fact]
    public void ATensorBiasAtHeadDim64KeepsTwoConsumerWarpgroups()
    {
        var module = ((AttentionKernel<ILGPU.Half>)StockVariantByName("Causal_Tensor_F16_64")).HopperForward!;
        module.BlockM.ShouldBe(128);
        module.Threads.ShouldBe(384);
        module.SmallGrid.ShouldBeNull();
    }

    [Fact]
    public void HeadDim128HasOneModule()
    {
        var module = ((AttentionKernel<ILGPU.Half>)StockVariantByName("None_None_F16_128")).HopperForward!;
        module.SmallGrid.ShouldBeNull();
        HopperLauncher.Pick(module, 512, 16, 132).ShouldBeSameAs(module);
    }

    private static AttentionKernel StockVariantByName(string name) =>
        AttentionRegistry.Variants.Single(k => k.Variant.Name == "XFormers.StockVariants." + name);
}
