namespace XFormers.Tests;

/// <summary>One CPU accelerator (groups of up to 128 threads) shared by every test that runs kernels.</summary>
public sealed class CpuContextFixture : IDisposable
{
    public XFormersContext Context { get; } = XFormersContext.CreateCpu();

    public void Dispose() => Context.Dispose();
}

[CollectionDefinition(Name)]
public sealed class CpuCollection : ICollectionFixture<CpuContextFixture>
{
    public const string Name = "CPU accelerator";
}
