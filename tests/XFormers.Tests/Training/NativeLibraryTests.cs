using XFormers.Training;

namespace XFormers.Tests.Training;

/// <summary>cuBLAS and NCCL load through one resolver: .NET allows one per assembly, and a data-parallel rank loads both.</summary>
public class NativeLibraryTests
{
    [Fact]
    public void CuBlasAndNcclBothLoadInOneProcess()
    {
        // Without a GPU neither library is found; what matters is that neither call throws for the other's resolver.
        Should.NotThrow(() => CuBlas.TryLoad());
        Should.NotThrow(() => Nccl.TryLoad());
        Should.NotThrow(() => CuBlas.TryLoad());
        if (!Nccl.TryLoad())
            Nccl.Failure.ShouldNotBeNullOrWhiteSpace();
    }
}
