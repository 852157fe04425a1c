using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using XFormers.Kernels;

namespace XFormers.Tests.Kernels;

/// <summary>
/// The kernel helpers reach ILGPU's PTX backend as their CUDA forms alone (<see cref="KernelIntrinsics"/>): a small kernel
/// that calls each helper once, compiled for sm_90 on this machine.
/// </summary>
public class KernelIntrinsicsTests
{
    [Fact]
    public void EveryHelperHasBothForms()
    {
        var helpers = KernelIntrinsics.Helpers.Select(p => $"{p.Helper.DeclaringType!.Name}.{p.Helper.Name}").Order(StringComparer.Ordinal);

        helpers.ShouldBe(
        [
            "ElementMath.ToHalf",
            "KernelMath.Abs", "KernelMath.Ceiling", "KernelMath.Exp", "KernelMath.Floor", "KernelMath.Log", "KernelMath.Pow",
            "KernelMath.Sqrt", "KernelMath.Tanh",
            "TensorCore.DynamicSharedBase", "TensorCore.Exp2", "TensorCore.LoadMatrices", "TensorCore.Mma",
            "TensorCore.PackBFloat162", "TensorCore.PackHalf2",
        ]);
        KernelIntrinsics.Helpers.ShouldAllBe(p => p.Ptx.Name == p.Helper.Name + "Ptx" && p.Cpu.Name == p.Helper.Name + "Cpu");
    }

    [Fact]
    public void TheKernelHoldsEachInstructionInlineAndNoTwin()
    {
        string ptx = CompileHelpersKernel(register: true);

        foreach (string instruction in new[]
        {
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
            "ldmatrix.sync.aligned.m8n8.x4.shared.b16", "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
        })
        {
            Count(ptx, instruction).ShouldBe(1, instruction);
        }
        foreach (string instruction in new[]
        {
            "ex2.approx.ftz.f32", "lg2.approx.ftz.f32", "sqrt.rn.f32", "abs.f32", "cvt.rn.f16x2.f32", "cvt.rn.bf16x2.f32",
            "cvt.rmi.f32.f32", "cvt.rpi.f32.f32", "cvt.rn.f16.f32", "__dyn_shared_alloca;",
        })
        {
            Count(ptx, instruction).ShouldBeGreaterThan(0, instruction);
        }
        // The mma twin parks its registers in shared memory around a warp barrier; the kernel itself has neither, and
        // every form is inlined (a call would give the kernel a stack frame).
        Count(ptx, "bar.warp.sync").ShouldBe(0);
        Count(ptx, "st.shared").ShouldBe(0);
        Regex.IsMatch(ptx, @"^\s*call", RegexOptions.Multiline).ShouldBeFalse();
    }

    [Fact]
    public void AContextWithoutTheFormsCannotCompileAKernelThatCallsAHelper()
    {
        var error = Should.Throw<Exception>(() => CompileHelpersKernel(register: false));
        string chain = string.Join(" | ", Chain(error).Select(e => $"{e.GetType().Name}: {e.Message}"));
        chain.ShouldContain("NotSupportedIntrinsicException", customMessage: chain);
    }

    /// <summary>
    /// A whole tensor-core kernel as the CUDA context compiles it: no twin left (the mma twin's warp barriers and shared
    /// exchange), and about a third of the 2.0 MB it was while the twins were inlined.
    /// </summary>
    [Fact]
    public void TheHeadDim64ForwardKernelHoldsNoTwin()
    {
        var kernel = (AttentionKernel<ILGPU.Half>)AttentionRegistry.Variants
            .Single(k => k.Variant.Name == "XFormers.StockVariants." + nameof(StockVariants.None_None_F16_64));
        var forward = kernel.KernelMethods().Single(m => m.Name == "tensorCoreForward");

        string ptx = Compile(
            EntryPointDescription.FromExplicitlyGroupedKernel(forward.Method), forward.Specialization, register: true);

        Count(ptx, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32").ShouldBe(128);
        Count(ptx, "ldmatrix.sync.aligned.m8n8.x4").ShouldBe(40);
        Count(ptx, "bar.warp.sync").ShouldBe(0);
        ptx.Length.ShouldBeLessThan(800_000);
    }

    private static IEnumerable<Exception> Chain(Exception? error)
    {
        for (; error is not null; error = error.InnerException)
            yield return error;
    }

    private static int Count(string ptx, string text) => Regex.Matches(ptx, Regex.Escape(text)).Count;

    private static string CompileHelpersKernel(bool register)
    {
        var method = typeof(KernelIntrinsicsTests).GetMethod(
            nameof(HelpersKernel), System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)!;
        return Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), KernelSpecialization.Empty, register);
    }

    /// <summary>PTX for sm_90 from a context with the options of a CUDA one (no GPU needed).</summary>
    private static string Compile(EntryPointDescription entry, KernelSpecialization specialization, bool register)
    {
        using var context = Context.Create(
            builder => builder.CPU().EnableAlgorithms().Optimize(OptimizationLevel.O2).Inlining(InliningMode.Aggressive));
        if (register)
            KernelIntrinsics.Register(context);
        using var backend = new PTXBackend(
            context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null);
        return ((PTXCompiledKernel)backend.Compile(entry, specialization)).PTXAssembly;
    }

    /// <summary>Every redirected helper once, on values the compiler cannot fold.</summary>
    private static void HelpersKernel(ArrayView<uint> words, ArrayView<float> floats)
    {
        var shared = SharedMemory.GetDynamic<uint>();
        int i = Grid.GlobalIndex.X;
        uint sharedBase = TensorCore.DynamicSharedBase();
        TensorCore.LoadMatrixX4(shared, sharedBase, 0, 24, 0, 0, 8, 0, 0, 8, out uint a0, out uint a1, out uint a2, out uint a3);
        TensorCore.LoadMatrixX4Transposed(shared, sharedBase, 0, 24, 0, 0, 8, 0, 0, 8, out uint b0, out uint b1, out _, out _);
        float d0 = floats[i], d1 = 0f, d2 = 0f, d3 = 0f;
        TensorCore.MmaM16N8K16(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, b0, b1, words);
        TensorCore.MmaM16N8K16Bf16(ref d0, ref d1, ref d2, ref d3, a0, a1, a2, a3, b0, b1, words);
        float x = d0 + d1 + d2 + d3;
        float y = KernelMath.Exp(x) + KernelMath.Log(x) + KernelMath.Tanh(x) + KernelMath.Sqrt(x) + KernelMath.Abs(x)
            + KernelMath.Floor(x) + KernelMath.Ceiling(x) + KernelMath.Pow(x, 2.5f) + TensorCore.Exp2(x);
        words[i] = TensorCore.PackHalf2(x, y) ^ TensorCore.PackBFloat162(y, x) ^ Interop.FloatAsInt((float)ElementMath.ToHalf(y));
    }
}
