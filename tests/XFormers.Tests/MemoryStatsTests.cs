namespace XFormers.Tests;

[Collection(CpuCollection.Name)]
public class MemoryStatsTests(CpuContextFixture fixture)
{
    [Fact]
    public void TensorsAreCountedWhileAlive()
    {
        var ctx = fixture.Context;
        long before = ctx.LiveBytes;
        ctx.ResetPeakBytes();
        using (var a = Tensor<float>.Zeros(ctx, 1000))
        using (var b = Tensor<Half>.Zeros(ctx, 10, 10))
        {
            ctx.LiveBytes.ShouldBe(before + 4000 + 200);
            var view = a.Reshape(10, 100);
            view.Dispose(); // a view owns nothing
            ctx.LiveBytes.ShouldBe(before + 4200);
        }
        ctx.LiveBytes.ShouldBe(before);
        ctx.PeakBytes.ShouldBe(before + 4200);
    }

    [Fact]
    public void MemoryEfficientAttentionHoldsNoScoreMatrix()
    {
        var ctx = fixture.Context;
        const int b = 1, m = 256, h = 2, k = 32;
        using var q = Tensor<float>.RandomNormal(ctx, 1, 1f, b, m, h, k);
        using (Fmha.MemoryEfficientAttention(q, q, q))
        {
            // Warm: the scratch for the log-sum-exp exists now.
        }
        long before = ctx.LiveBytes;
        ctx.ResetPeakBytes();
        using (Fmha.MemoryEfficientAttention(q, q, q))
        {
        }
        // The output is all it allocates: far below one [B, H, M, M] score matrix (512 KiB here).
        (ctx.PeakBytes - before).ShouldBe((long)b * m * h * k * sizeof(float));
    }
}
