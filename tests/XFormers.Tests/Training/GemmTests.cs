using ILGPU;
using XFormers.Kernels;
using XFormers.Training;
using static XFormers.Tests.Training.TrainingTestUtil;

namespace XFormers.Tests.Training;

[Collection(CpuCollection.Name)]
public sealed class GemmTests(CpuContextFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    private static double[] Reference(bool transA, bool transB, int m, int n, int k, float alpha, float[] a, int lda, float[] b, int ldb, float beta, float[] c, int ldc)
    {
        var result = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                    sum += (double)(transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                result[i * n + j] = alpha * sum + beta * c[i * ldc + j];
            }
        }
        return result;
    }

    [Theory]
    [InlineData(GemmBackend.Managed, false, false)]
    [InlineData(GemmBackend.Managed, true, false)]
    [InlineData(GemmBackend.Managed, false, true)]
    [InlineData(GemmBackend.Managed, true, true)]
    [InlineData(GemmBackend.Kernel, false, true)]
    [InlineData(GemmBackend.Kernel, true, false)]
    public void Gemm_matches_fp64_for_every_transpose(GemmBackend backend, bool transA, bool transB)
    {
        int m = 13, n = 19, k = 7;
        int lda = transA ? m : k, ldb = transB ? k : n;
        var a = Random(1, m * k);
        var b = Random(2, k * n);
        var c = Random(3, m * n);
        using var da = Upload(context, a);
        using var db = Upload(context, b);
        using var dc = Upload(context, c);
        using var gemm = Gemm.Create(new DeviceLauncher(context), backend);
        gemm.Run<float, FloatConvert, float, FloatConvert>(transA, transB, m, n, k, 0.5f, da.View, lda, db.View, ldb, 2f, dc.View, n);
        var expected = Reference(transA, transB, m, n, k, 0.5f, a, lda, b, ldb, 2f, c, n);
        RelativeError(Download(context, dc), expected).ShouldBeLessThan(1e-6);
    }

    [Fact]
    public void Gemm_half_inputs_accumulate_into_float()
    {
        int m = 33, n = 40, k = 24;
        var a = Random(4, m * k).Select(x => (float)(Half)x).ToArray();
        var b = Random(5, n * k).Select(x => (float)(Half)x).ToArray();
        using var da = Upload(context, a.Select(x => (Half)x).ToArray());
        using var db = Upload(context, b.Select(x => (Half)x).ToArray());
        using var dc = Upload(context, new float[m * n]);
        using var gemm = Gemm.Create(new DeviceLauncher(context));
        gemm.Backend.ShouldBe(GemmBackend.Managed);
        gemm.Run<Half, HalfConvert, float, FloatConvert>(false, true, m, n, k, 1f, da.View, k, db.View, k, 0f, dc.View, n);
        var expected = Reference(false, true, m, n, k, 1f, a, k, b, k, 0f, new float[m * n], n);
        RelativeError(Download(context, dc), expected).ShouldBeLessThan(1e-6);
    }

    [Fact]
    public void Gemm_kernel_through_ILGPU_on_the_CPU_accelerator_matches_the_managed_loop()
    {
        int m = 9, n = 11, k = 5;
        var a = Random(6, m * k);
        var b = Random(7, k * n);
        using var da = Upload(context, a.Select(BFloat16.FromFloat).ToArray());
        using var db = Upload(context, b.Select(BFloat16.FromFloat).ToArray());
        using var viaIlgpu = Upload(context, new BFloat16[m * n]);
        using var managed = Upload(context, new BFloat16[m * n]);
        using var kernelGemm = Gemm.Create(new DeviceLauncher(context) { UseIlgpuOnCpu = true }, GemmBackend.Kernel);
        using var managedGemm = Gemm.Create(new DeviceLauncher(context), GemmBackend.Managed);
        kernelGemm.Run<BFloat16, BFloat16Convert, BFloat16, BFloat16Convert>(false, false, m, n, k, 1f, da.View, k, db.View, n, 0f, viaIlgpu.View, n);
        managedGemm.Run<BFloat16, BFloat16Convert, BFloat16, BFloat16Convert>(false, false, m, n, k, 1f, da.View, k, db.View, n, 0f, managed.View, n);
        var x = Download(context, viaIlgpu).Select(v => v.ToFloat()).ToArray();
        var y = Download(context, managed).Select(v => v.ToFloat()).ToArray();
        for (int i = 0; i < x.Length; i++)
            Math.Abs(x[i] - y[i]).ShouldBeLessThanOrEqualTo(Math.Abs(y[i]) * 0.008f + 1e-6f);
    }

    [Fact]
    public void Gemm_rejects_views_too_small_for_the_shape()
    {
        using var small = Upload(context, new float[10]);
        using var gemm = Gemm.Create(new DeviceLauncher(context));
        var error = Should.Throw<ArgumentException>(() =>
            gemm.Run<float, FloatConvert, float, FloatConvert>(false, false, 4, 4, 4, 1f, small.View, 4, small.View, 4, 0f, small.View, 4));
        error.Message.ShouldContain("needs 16 elements");
    }
}
