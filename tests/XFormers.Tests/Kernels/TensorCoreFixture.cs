using XFormers.Kernels;

namespace XFormers.Tests.Kernels;

/// <summary>
/// One CPU accelerator with 32-lane warps, on which the tensor-core kernels run their scalar twins, for every test that
/// runs them. <see cref="AttentionKernel.TensorCores"/> is process-wide, so those tests share one collection: a class that
/// set it back to Auto while another still ran would silently send that one to the SIMT kernels.
/// </summary>
public sealed class TensorCoreFixture : IDisposable
{
    public TensorCoreFixture() => AttentionKernel.TensorCores = TensorCorePolicy.Always;

    public XFormersContext Context { get; } = XFormersContext.CreateCpu(null, threadsPerWarp: 32);

    public void Dispose()
    {
        AttentionKernel.TensorCores = TensorCorePolicy.Auto;
        Context.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class TensorCoreCollection : ICollectionFixture<TensorCoreFixture>
{
    public const string Name = "CPU accelerator with 32-lane warps";
}
