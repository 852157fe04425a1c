using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using XFormers.Kernels;
using XFormers.Training;

namespace XFormers.Tests.Training;

/// <summary>
/// Every trainer kernel compiles to PTX for sm_90 with the options of a CUDA context (ILGPU.Algorithms on),
/// without a GPU: CI cannot run them on CUDA, but it catches what the PTX backend cannot translate.
/// </summary>
public sealed class TrainingPtxTests
{
    public static TheoryData<string> Kernels() => new(KernelTable().Keys);

    public static TheoryData<string> GroupedKernels() => new(GroupedKernelTable().Keys);

    private static Dictionary<string, Delegate> GroupedKernelTable() => new()
    {
        ["LayerNorm.ForwardRows<Half>"] = new Action<LayerNorm.ForwardArgs<Half>>(LayerNorm.ForwardRowsKernel<Half, HalfConvert>),
        ["LayerNorm.BackwardRows<Half>"] = new Action<LayerNorm.BackwardArgs<Half>>(LayerNorm.BackwardRowsKernel<Half, HalfConvert>),
        ["CrossEntropy.Rows<Half>"] = new Action<CrossEntropy.Args<Half>>(CrossEntropy.RowsKernel<Half, HalfConvert>),
        ["LayerNorm.BackwardRows<BFloat16>"] = new Action<LayerNorm.BackwardArgs<BFloat16>>(LayerNorm.BackwardRowsKernel<BFloat16, BFloat16Convert>),
    };

    private static Dictionary<string, Delegate> KernelTable() => new()
    {
        ["LayerNorm.Forward<Half>"] = new Action<Index1D, LayerNorm.ForwardArgs<Half>>(LayerNorm.ForwardKernel<Half, HalfConvert>),
        ["LayerNorm.Backward<Half>"] = new Action<Index1D, LayerNorm.BackwardArgs<Half>>(LayerNorm.BackwardKernel<Half, HalfConvert>),
        ["LayerNorm.Backward<BFloat16>"] = new Action<Index1D, LayerNorm.BackwardArgs<BFloat16>>(LayerNorm.BackwardKernel<BFloat16, BFloat16Convert>),
        ["SwiGlu.Forward<Half>"] = new Action<Index1D, SwiGlu.Args<Half>>(SwiGlu.ForwardKernel<Half, HalfConvert>),
        ["SwiGlu.Backward<Half>"] = new Action<Index1D, SwiGlu.Args<Half>>(SwiGlu.BackwardKernel<Half, HalfConvert>),
        ["CrossEntropy<Half>"] = new Action<Index1D, CrossEntropy.Args<Half>>(CrossEntropy.Kernel<Half, HalfConvert>),
        ["CrossEntropy<float>"] = new Action<Index1D, CrossEntropy.Args<float>>(CrossEntropy.Kernel<float, FloatConvert>),
        ["CrossEntropy.Metrics"] = new Action<Index1D, CrossEntropy.MetricsArgs>(CrossEntropy.MetricsKernel),
        ["AdamW<Half>"] = new Action<Index1D, AdamW.Args<Half>>(AdamW.Kernel<Half, HalfConvert>),
        ["AdamW.Corrections"] = new Action<Index1D, AdamW.Args<Half>>(AdamW.CorrectionsKernel<Half>),
        ["AdamW<BFloat16>"] = new Action<Index1D, AdamW.Args<BFloat16>>(AdamW.Kernel<BFloat16, BFloat16Convert>),
        ["GradScaler.Check"] = new Action<Index1D, GradScaler.CheckArgs>(GradScaler.CheckKernel),
        ["GradScaler.Update"] = new Action<Index1D, GradScaler.UpdateArgs>(GradScaler.UpdateKernel),
        ["TokenBatch"] = new Action<Index1D, TokenBatch.Args>(TokenBatch.Kernel),
        ["Embedding.Forward"] = new Action<Index1D, Embedding.ForwardArgs>(Embedding.ForwardKernel),
        ["Embedding.RankPartial"] = new Action<Index1D, Embedding.SortArgs>(Embedding.RankPartialKernel),
        ["Embedding.Rank"] = new Action<Index1D, Embedding.SortArgs>(Embedding.RankKernel),
        ["ParameterStore.Round<Half>"] = new Action<Index1D, ParameterStore<Half>.RoundArgs>(ParameterStore<Half>.RoundKernel<HalfConvert>),
        ["Embedding.TokenGrad"] = new Action<Index1D, Embedding.TokenGradArgs>(Embedding.TokenGradKernel),
        ["Attention.Split<Half>"] = new Action<Index1D, CausalSelfAttention.SplitArgs<Half>>(CausalSelfAttention.SplitKernel<Half>),
        ["Attention.Merge<Half>"] = new Action<Index1D, CausalSelfAttention.SplitArgs<Half>>(CausalSelfAttention.MergeKernel<Half>),
        ["Gemm<Half→float>"] = new Action<Index1D, Gemm.GemmArgs<Half, float>>(Gemm.GemmKernel<Half, HalfConvert, float, FloatConvert>),
        ["Gemm<BFloat16→BFloat16>"] = new Action<Index1D, Gemm.GemmArgs<BFloat16, BFloat16>>(Gemm.GemmKernel<BFloat16, BFloat16Convert, BFloat16, BFloat16Convert>),
    };

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Training_kernel_compiles_to_PTX(string name) =>
        CompileToPtx(EntryPointDescription.FromImplicitlyGroupedKernel(KernelTable()[name].Method)).ShouldContain(".entry");

    [Theory]
    [MemberData(nameof(GroupedKernels))]
    public void Warp_per_row_kernel_compiles_to_PTX_with_shuffles(string name) =>
        CompileToPtx(EntryPointDescription.FromExplicitlyGroupedKernel(GroupedKernelTable()[name].Method)).ShouldContain("shfl.sync");

    private static string CompileToPtx(EntryPointDescription entry)
    {
        using var context = Context.Create(builder => builder.CPU().EnableAlgorithms().Optimize(OptimizationLevel.O2).Inlining(InliningMode.Aggressive));
        using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null);
        return ((PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
    }
}
