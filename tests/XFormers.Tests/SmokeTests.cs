namespace XFormers.Tests;

[Collection(CpuCollection.Name)]
public class SmokeTests(CpuContextFixture fixture)
{
    [Fact]
    public void Float32Causal()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var errors = AttentionCheck.Run<float>(fixture.Context, new AttentionCase(2, 37, 37, 2, 2, 64, MaskKind.Causal));
        Console.WriteLine($"{errors} {sw.ElapsedMilliseconds} ms");
        errors.Max.ShouldBeLessThan(1e-5);
    }
}
