using ILGPU.Runtime;
using XFormers.Training;

namespace XFormers.Tests.Training;

/// <summary>
/// The switch of an accelerator to its device's primary CUDA context, driven through a recording fake of the driver on a
/// CPU context (ILGPU's NativePtr setter, the order of the driver calls, what ILGPU's own disposal is left to destroy),
/// and the context trace's lines.
/// </summary>
public class PrimaryCudaContextTests
{
    private const int Device = 3;

    [Fact]
    public void Adoption_hands_ILGPU_the_primary_context_and_undoes_it_after_ILGPU_is_done()
    {
        var driver = new RecordingDriver();
        var context = XFormersContext.CreateCpu(1);
        IntPtr own = context.Accelerator.NativePtr;

        PrimaryCudaContext.Adopt(context, driver);

        context.Accelerator.NativePtr.ShouldBe(RecordingDriver.Primary);
        PrimaryCudaContext.IsPrimary(context.Accelerator).ShouldBeTrue();
        driver.Calls.ShouldBe(new[] { $"device of {own}", $"retain primary of {Device}", "set current primary", $"destroy {own}" });

        // Subscribed after the switch, so it runs after the switch's own handler and before ILGPU frees and destroys.
        IntPtr destroyedByIlgpu = IntPtr.Zero;
        int callsBeforeIlgpu = -1;
        context.Accelerator.Disposed += (sender, _) =>
        {
            destroyedByIlgpu = ((Accelerator)sender!).NativePtr;
            callsBeforeIlgpu = driver.Calls.Count;
        };
        context.Dispose();

        destroyedByIlgpu.ShouldBe(RecordingDriver.Placeholder);
        driver.Calls.Skip(4).ShouldBe(new[] { "set current primary", $"create unbound on {Device}", $"release primary of {Device}" });
        callsBeforeIlgpu.ShouldBe(6, "the primary context is released only after ILGPU's disposal");
    }

    [Fact]
    public void Adoption_comes_before_any_allocation_and_only_once()
    {
        using (var used = XFormersContext.CreateCpu(1))
        {
            IntPtr own = used.Accelerator.NativePtr;
            using var tensor = Tensor<float>.Empty(used, 4);
            var driver = new RecordingDriver();
            Should.Throw<InvalidOperationException>(() => PrimaryCudaContext.Adopt(used, driver)).Message.ShouldContain("before anything is allocated");
            driver.Calls.ShouldBeEmpty();
            used.Accelerator.NativePtr.ShouldBe(own);
            PrimaryCudaContext.IsPrimary(used.Accelerator).ShouldBeFalse();
        }

        var twice = new RecordingDriver();
        var context = XFormersContext.CreateCpu(1);
        PrimaryCudaContext.Adopt(context, twice);
        Should.Throw<InvalidOperationException>(() => PrimaryCudaContext.Adopt(context, twice)).Message.ShouldContain("already");
        twice.Calls.Count.ShouldBe(4);
        context.Dispose();
    }

    [Fact]
    public void A_failed_retain_leaves_ILGPU_its_own_context()
    {
        var driver = new RecordingDriver { RetainFails = true };
        var context = XFormersContext.CreateCpu(1);
        IntPtr own = context.Accelerator.NativePtr;

        Should.Throw<InvalidOperationException>(() => PrimaryCudaContext.Adopt(context, driver)).Message.ShouldContain("cuDevicePrimaryCtxRetain");

        context.Accelerator.NativePtr.ShouldBe(own);
        PrimaryCudaContext.IsPrimary(context.Accelerator).ShouldBeFalse();
        context.Dispose();
        driver.Calls.ShouldBe(new[] { $"device of {own}" });
    }

    [Fact]
    public void A_CPU_context_comes_back_as_created()
    {
        using var context = PrimaryCudaContext.Create(AcceleratorPreference.Cpu);
        context.IsCpu.ShouldBeTrue();
        PrimaryCudaContext.IsPrimary(context.Accelerator).ShouldBeFalse();
    }

    [Fact]
    public void Trace_lines_name_every_handle_and_count_the_contexts()
    {
        var one = CudaContextTrace.Format("1", "after ncclCommInitRank", 0x10, 0x10, 0x10, new[] { ("ILGPU buffer", (IntPtr)0x10), ("gradients", (IntPtr)0x10) });
        one.ShouldBe("context [rank 1] after ncclCommInitRank: current 0x10, ILGPU 0x10, primary 0x10, ILGPU buffer 0x10, gradients 0x10 | one context");

        // ILGPU's own context beside the primary one NCCL made current: the failure this switch removes.
        var two = CudaContextTrace.Format("0", "first cublasGemmEx", 0x20, 0x10, 0x20, new[] { ("ILGPU buffer", (IntPtr)0x10), ("A", (IntPtr)0x20) });
        two.ShouldEndWith("| 2 contexts: current, primary, A; ILGPU, ILGPU buffer");

        var unknown = CudaContextTrace.Format("0", "before ncclCommInitRank", 0x10, 0x10, IntPtr.Zero, Array.Empty<(string, IntPtr)>());
        unknown.ShouldBe("context [rank 0] before ncclCommInitRank: current 0x10, ILGPU 0x10, primary none | one context");
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData(" True ", true)]
    [InlineData("on", true)]
    [InlineData("0", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void The_trace_variable_turns_it_on(string? value, bool on) => CudaContextTrace.IsOn(value).ShouldBe(on);

    /// <summary>Records each call; hands out fixed handles.</summary>
    private sealed class RecordingDriver : PrimaryCudaContext.IContextDriver
    {
        public static readonly IntPtr Primary = 0x1000;
        public static readonly IntPtr Placeholder = 0x2000;

        public List<string> Calls { get; } = new();

        public bool RetainFails { get; init; }

        public int DeviceOf(IntPtr context)
        {
            Calls.Add($"device of {context}");
            return Device;
        }

        public IntPtr RetainPrimary(int device)
        {
            if (RetainFails)
                throw new InvalidOperationException("cuDevicePrimaryCtxRetain failed: CUDA driver error 2 (CUDA_ERROR_OUT_OF_MEMORY).");
            Calls.Add($"retain primary of {device}");
            return Primary;
        }

        public void ReleasePrimary(int device) => Calls.Add($"release primary of {device}");

        public void SetCurrent(IntPtr context) => Calls.Add($"set current {(context == Primary ? "primary" : context.ToString())}");

        public void Destroy(IntPtr context) => Calls.Add($"destroy {context}");

        public IntPtr CreateUnbound(int device)
        {
            Calls.Add($"create unbound on {device}");
            return Placeholder;
        }
    }
}
