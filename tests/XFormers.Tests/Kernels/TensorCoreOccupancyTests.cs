using ILGPU.Runtime;

namespace XFormers.Tests.Kernels;

/// <summary>
/// The dQ tensor-core kernel up to HeadDim 64 is compiled for three groups of 128 threads a multiprocessor
/// (TensorCorePlan.BackwardQGroupsPerMultiprocessor); the other kernels, and dQ at larger head dims, are left to ptxas.
/// </summary>
public class TensorCoreOccupancyTests
{
    [Theory]
    [InlineData(nameof(StockVariants.None_None_F16_64), 3)]
    [InlineData(nameof(StockVariants.Causal_None_BF16_64), 3)]
    [InlineData(nameof(StockVariants.Causal_None_F16_32), 3)]
    [InlineData(nameof(StockVariants.None_None_F16_128), 0)]
    [InlineData(nameof(StockVariants.Causal_None_BF16_256), 0)]
    public void OnlyTheDQKernelUpToHeadDim64AsksForThreeGroups(string name, int groups)
    {
        var methods = AttentionRegistry.Variants.Single(k => k.Variant.Name == "XFormers.StockVariants." + name) switch
        {
            AttentionKernel<ILGPU.Half> h => h.KernelMethods(),
            AttentionKernel<BFloat16> b => b.KernelMethods(),
            var other => throw new InvalidOperationException($"{other.Variant.Name} is not a 16-bit variant"),
        };

        foreach (var (method, _, specialization) in methods)
        {
            if (method == "tensorCoreBackwardQ" && groups > 0)
            {
                specialization.MinNumGroupsPerMultiprocessor.ShouldBe(groups);
                specialization.MaxNumThreadsPerGroup.ShouldBe(128);
            }
            else
            {
                specialization.ShouldBe(KernelSpecialization.Empty, method);
            }
        }
        methods.Select(m => m.Name).ShouldContain("tensorCoreBackwardQ");
    }
}
