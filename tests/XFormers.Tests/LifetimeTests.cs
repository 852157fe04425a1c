namespace XFormers.Tests;

/// <summary>
/// Disposed and foreign tensors, aliased outputs, sizes past a 64-bit byte count and stale forwards fail before any
/// launch with the exception the API promises; disposing a context releases the kernels compiled for it.
/// </summary>
[Collection(CpuCollection.Name)]
public class LifetimeTests(CpuContextFixture fixture)
{
    private XFormersContext Ctx => fixture.Context;

    private Tensor<float> Rand(int seed, params int[] shape) => Tensor<float>.RandomNormal(Ctx, seed, 1f, shape);

    [Fact]
    public void DisposedQueryIsNamed()
    {
        using var k = Rand(2, 1, 8, 2, 32);
        var q = Rand(1, 1, 8, 2, 32);
        q.Dispose();
        q.IsDisposed.ShouldBeTrue();
        var ex = Should.Throw<ObjectDisposedException>(() => Fmha.MemoryEfficientAttention(q, k, k));
        ex.ObjectName.ShouldBe("query");
        ex.Message.ShouldContain("Tensor<Single>[1, 8, 2, 32]) was disposed");
    }

    [Fact]
    public void ViewOfADisposedParentIsNamed()
    {
        using var k = Rand(2, 1, 8, 2, 32);
        var parent = Rand(1, 1, 16, 2, 32);
        var view = parent.Narrow(1, 8, 8);
        parent.Dispose();
        view.IsDisposed.ShouldBeTrue();
        var ex = Should.Throw<ObjectDisposedException>(() => Fmha.MemoryEfficientAttention(k, k, view));
        ex.ObjectName.ShouldBe("value");
        ex.Message.ShouldContain("is a view of a tensor that was disposed");
        Should.Throw<ObjectDisposedException>(() => view.ToArray()).ObjectName.ShouldBe("this");
    }

    [Fact]
    public void DisposedTensorMethodsThrowObjectDisposed()
    {
        var t = Rand(1, 2, 3);
        t.Dispose();
        t.Dispose(); // twice is fine
        Should.Throw<ObjectDisposedException>(() => t.ToArray());
        Should.Throw<ObjectDisposedException>(() => t.CopyFrom(new float[6]));
        Should.Throw<ObjectDisposedException>(() => t.Clear());
        Should.Throw<ObjectDisposedException>(() => t.Reshape(6));
        Should.Throw<ObjectDisposedException>(() => t.Narrow(0, 0, 1));
        Should.Throw<ObjectDisposedException>(() => _ = t.View);
        t.Length.ShouldBe(6);
        t.ShapeString.ShouldBe("[2, 3]");
    }

    [Fact]
    public void DisposedIsRaisedOnceAfterTheAcceleratorIsFreed()
    {
        var context = XFormersContext.CreateCpu(1);
        var accelerator = context.Accelerator;
        var seen = new List<(object? Sender, bool AcceleratorFreed)>();
        context.Disposed += (sender, _) => seen.Add((sender, accelerator.IsDisposed));
        context.Dispose();
        context.Dispose();
        seen.Count.ShouldBe(1);
        seen[0].Sender.ShouldBeSameAs(context);
        seen[0].AcceleratorFreed.ShouldBeTrue();
    }

    [Fact]
    public void DisposedContextIsNamed()
    {
        var context = XFormersContext.CreateCpu(1);
        var q = Tensor<float>.Zeros(context, 1, 4, 1, 16);
        context.Dispose();
        context.Dispose();
        context.IsDisposed.ShouldBeTrue();
        q.IsDisposed.ShouldBeTrue();
        Should.Throw<ObjectDisposedException>(() => Fmha.MemoryEfficientAttention(q, q, q)).ObjectName.ShouldBe(nameof(XFormersContext));
        Should.Throw<ObjectDisposedException>(() => q.ToArray()).ObjectName.ShouldBe(nameof(XFormersContext));
        Should.Throw<ObjectDisposedException>(() => Tensor<float>.Empty(context, 2)).ObjectName.ShouldBe(nameof(XFormersContext));
        q.Dispose();
    }

    [Fact]
    public void OutputOnAnotherContextIsRejected()
    {
        using var other = XFormersContext.CreateCpu(1);
        using var q = Rand(1, 1, 8, 2, 32);
        using var output = Tensor<float>.Empty(other, 1, 8, 2, 32);
        using var lse = Tensor<float>.Empty(Ctx, 1, 2, 8);
        var ex = Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttentionForward(q, q, q, output, lse));
        ex.ParamName.ShouldBe("output");
        ex.Message.ShouldContain("lives on another context");
    }

    [Fact]
    public void ForwardFromAnotherContextIsRejected()
    {
        using var other = XFormersContext.CreateCpu(1);
        using var q = Rand(1, 1, 8, 2, 32);
        using var q2 = Tensor<float>.FromArray(other, q.ToArray(), 1, 8, 2, 32);
        using var forward = Fmha.MemoryEfficientAttentionForward(q2, q2, q2);
        var ex = Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttentionBackward(q, forward, q, q, q));
        ex.ParamName.ShouldBe("forward");
        ex.Message.ShouldContain("lives on another context");
    }

    [Fact]
    public void SameTensorForTwoGradientsIsRejected()
    {
        using var q = Rand(1, 1, 8, 2, 32);
        using var k = Rand(2, 1, 8, 2, 32);
        using var forward = Fmha.MemoryEfficientAttentionForward(q, k, k);
        using var grad = Tensor<float>.Empty(Ctx, 1, 8, 2, 32);
        using var dv = Tensor<float>.Empty(Ctx, 1, 8, 2, 32);
        var ex = Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttentionBackward(q, forward.Output, forward.Lse, q, k, k, grad, grad, dv));
        ex.ParamName.ShouldBe("gradQuery");
        ex.Message.ShouldContain("shares storage with gradKey");
    }

    [Fact]
    public void ShapeTooLargeForA64BitByteCountIsNamed()
    {
        var ex = Should.Throw<ArgumentException>(() => Tensor<float>.Empty(Ctx, 1 << 30, 1 << 30, 4));
        ex.ParamName.ShouldBe("shape");
        ex.Message.ShouldContain("[1073741824, 1073741824, 4]");
        ex.Message.ShouldContain("64-bit byte count");
    }

    [Fact]
    public void ShapeTooLargeForTheDeviceIsNamedBeforeAllocating()
    {
        long before = Ctx.LiveBytes;
        var ex = Should.Throw<ArgumentException>(() => Tensor<float>.Empty(Ctx, 1 << 20, 1 << 20, 1 << 10));
        ex.ParamName.ShouldBe("shape");
        ex.Message.ShouldContain("[1048576, 1048576, 1024] needs 4503599627370496 bytes");
        Ctx.LiveBytes.ShouldBe(before);
    }

    [Fact]
    public void WritesBumpTheVersionSharedWithViews()
    {
        using var t = Rand(1, 4, 2);
        long v0 = t.Version;
        var view = t.Narrow(0, 1, 2);
        view.CopyFrom(new float[4]);
        t.Version.ShouldBe(v0 + 1);
        t.Clear();
        view.Version.ShouldBe(v0 + 2);
        _ = t.ToArray();
        t.Version.ShouldBe(v0 + 2);
    }

    [Fact]
    public void BackwardAfterTheQueryChangedIsRejected()
    {
        using var q = Rand(1, 1, 8, 2, 32);
        using var k = Rand(2, 1, 8, 2, 32);
        using var dO = Rand(3, 1, 8, 2, 32);
        using var forward = Fmha.MemoryEfficientAttentionForward(q, k, k);
        using (Fmha.MemoryEfficientAttentionBackward(dO, forward, q, k, k))
        {
        }
        q.CopyFrom(Rand(4, 1, 8, 2, 32).ToArray());
        var ex = Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttentionBackward(dO, forward, q, k, k));
        ex.ParamName.ShouldBe("forward");
        ex.Message.ShouldContain("query was written after the forward");
    }

    [Fact]
    public void BackwardWithOtherInputsThanTheForwardIsRejected()
    {
        using var q = Rand(1, 1, 8, 2, 32);
        using var k = Rand(2, 1, 8, 2, 32);
        using var otherValue = Rand(5, 1, 8, 2, 32);
        using var dO = Rand(3, 1, 8, 2, 32);
        using var forward = Fmha.MemoryEfficientAttentionForward(q, k, k);
        var ex = Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttentionBackward(dO, forward, q, k, otherValue));
        ex.ParamName.ShouldBe("forward");
        ex.Message.ShouldContain("read another value tensor");
    }

    [Fact]
    public void BackwardAfterTheBiasChangedIsRejected()
    {
        using var q = Rand(1, 1, 8, 2, 32);
        using var bias = Rand(6, 1, 2, 8, 8);
        using var dO = Rand(3, 1, 8, 2, 32);
        var attnBias = new TensorBias<float>(bias);
        using var output = Tensor<float>.Empty(Ctx, 1, 8, 2, 32);
        using var lse = Tensor<float>.Empty(Ctx, 1, 2, 8);
        Fmha.MemoryEfficientAttentionForward(q, q, q, output, lse, attnBias);
        bias.Clear();
        using var dq = Tensor<float>.Empty(Ctx, 1, 8, 2, 32);
        using var dk = Tensor<float>.Empty(Ctx, 1, 8, 2, 32);
        using var dv = Tensor<float>.Empty(Ctx, 1, 8, 2, 32);
        var ex = Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttentionBackward(dO, output, lse, q, q, q, dq, dk, dv, null, attnBias));
        ex.ParamName.ShouldBe("lse");
        ex.Message.ShouldContain("attnBias was written after the forward");
    }
}

/// <summary>
/// Many create/run/dispose rounds: every accelerator is collected, the kernel cache is back where it was, and managed memory
/// stays flat. Alone in its collection (no test runs beside it), so the memory it measures is its own.
/// </summary>
[Collection(Name)]
public class ContextLeakTests
{
    public const string Name = "Context leak";

    [CollectionDefinition(Name, DisableParallelization = true)]
    public sealed class Definition
    {
    }

    [Fact]
    public void DisposingContextsReleasesTheirKernelsAndMemoryStaysFlat()
    {
        // Warm up the process (JIT, ILGPU's own statics) before measuring.
        RunRounds(3, new List<WeakReference>());
        int baseline = KernelCache.AcceleratorCount;
        long before = ManagedBytes();

        const int rounds = 25;
        var accelerators = new List<WeakReference>();
        RunRounds(rounds, accelerators);

        KernelCache.AcceleratorCount.ShouldBe(baseline);
        long growth = ManagedBytes() - before;
        accelerators.Count(a => a.IsAlive).ShouldBe(0, "accelerators of disposed contexts are still reachable");
        // Each round compiles a forward kernel; kept alive, 25 rounds grew the heap by about 35 MB. Freed, the growth is a
        // few hundred bytes: allow 2 MB for what the runtime keeps on its own.
        growth.ShouldBeLessThan(2L << 20, $"managed memory grew by {growth} bytes over {rounds} rounds");
    }

    private static void RunRounds(int rounds, List<WeakReference> accelerators)
    {
        for (int r = 0; r < rounds; r++)
        {
            var context = XFormersContext.CreateCpu(1);
            accelerators.Add(new WeakReference(context.Accelerator));
            var data = HostRandom.Normal(r, 64);
            using (var q = Tensor<float>.FromArray(context, data, 1, 4, 1, 16))
            using (var o = Fmha.MemoryEfficientAttention(q, q, q))
                o.ToArray().ShouldAllBe(x => float.IsFinite(x));
            context.Dispose();
        }
    }

    private static long ManagedBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }
}
