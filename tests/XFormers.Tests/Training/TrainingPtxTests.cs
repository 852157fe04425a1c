using System.Globalization;
using System.Text.RegularExpressions;
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
        ["LayerNorm.BackwardGroups<Half>"] = new Action<LayerNorm.BackwardArgs<Half>>(LayerNorm.BackwardGroupsKernel<Half, HalfConvert>),
        ["LayerNorm.BackwardGroups<BFloat16>"] = new Action<LayerNorm.BackwardArgs<BFloat16>>(LayerNorm.BackwardGroupsKernel<BFloat16, BFloat16Convert>),
        ["CrossEntropy.Rows<BFloat16>"] = new Action<CrossEntropy.Args<BFloat16>>(CrossEntropy.RowsKernel<BFloat16, BFloat16Convert>),
    };

    /// <summary>The wide kernels and the vector instructions their PTX must hold (16 bytes a lane for fp16, 32 for fp32).</summary>
    public static TheoryData<string, string[]> WideKernels() => new()
    {
        { "CrossEntropy.Rows<Half>", ["ld.global.v4.b16", "st.global.v4.b16"] },
        { "LayerNorm.ForwardRows<Half>", ["ld.global.v4.f32", "st.global.v4.b16", "st.global.v4.f32"] },
        { "LayerNorm.BackwardGroups<Half>", ["ld.global.v4.b16", "ld.global.v4.f32", "st.global.v4.f32", "st.global.v4.b16", "ld.shared.v4.f32", "st.shared.v4.f32"] },
        { "SwiGlu.Forward<Half>", ["ld.global.v4.b16", "st.global.v4.b16"] },
        { "SwiGlu.Backward<Half>", ["ld.global.v4.b16", "st.global.v4.b16"] },
        { "AdamW<Half>", ["ld.global.v4.f32", "st.global.v4.f32", "st.global.v4.b16"] },
        { "GradScaler.Check", ["ld.global.v4.f32"] },
        { "Attention.Split<Half>", ["ld.global.v4.b16", "st.global.v4.b16"] },
        { "Attention.Merge<Half>", ["ld.global.v4.b16", "st.global.v4.b16"] },
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
        CompileToPtx(EntryPointDescription.FromImplicitlyGroupedKernel(KernelTable()[name].Method), name).ShouldContain(".entry");

    [Theory]
    [MemberData(nameof(GroupedKernels))]
    public void Warp_per_row_kernel_compiles_to_PTX_with_shuffles(string name) =>
        CompileToPtx(EntryPointDescription.FromExplicitlyGroupedKernel(GroupedKernelTable()[name].Method), name).ShouldContain("shfl.sync");

    [Theory]
    [MemberData(nameof(WideKernels))]
    public void Wide_kernel_loads_and_stores_vectors(string name, string[] instructions)
    {
        var ptx = KernelTable().TryGetValue(name, out var kernel)
            ? CompileToPtx(EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method), name)
            : CompileToPtx(EntryPointDescription.FromExplicitlyGroupedKernel(GroupedKernelTable()[name].Method), name);
        foreach (var instruction in instructions)
            ptx.ShouldContain(instruction, customMessage: $"{name} has no {instruction}");
        // The only local slots are the 4-byte operands of inline PTX (KernelMath.Exp), which ptxas keeps in registers.
        Regex.Matches(ptx, @"__local_depot\d+\[(\d+)\]").Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))
            .ShouldAllBe(bytes => bytes <= 4, $"{name} keeps a Float8 in local memory");
    }

    /// <summary>PTX of one kernel; with XFORMERS_PTX_DUMP set to a folder, also written there as NAME.ptx.</summary>
    private static string CompileToPtx(EntryPointDescription entry, string name)
    {
        using var context = Context.Create(builder => builder.CPU().EnableAlgorithms().Optimize(OptimizationLevel.O2).Inlining(InliningMode.Aggressive));
        KernelIntrinsics.Register(context);
        using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null);
        var ptx = ((PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
        if (Environment.GetEnvironmentVariable("XFORMERS_PTX_DUMP") is { Length: > 0 } dump)
            System.IO.File.WriteAllText(System.IO.Path.Combine(dump, name + ".ptx"), ptx);
        return ptx;
    }
}
