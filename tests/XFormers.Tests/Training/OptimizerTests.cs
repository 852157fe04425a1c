using XFormers.Dsl;
using XFormers.Kernels;
using XFormers.Training;
using static XFormers.Tests.Training.TrainingTestUtil;

namespace XFormers.Tests.Training;

[Collection(CpuCollection.Name)]
public sealed class OptimizerTests(CpuContextFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    private static ParameterStore<Half> Store(XFormersContext context, float[] parameters)
    {
        var store = new ParameterStore<Half>(context, new[] { ("w", new[] { parameters.Length }) });
        store.Load<HalfConvert>(new DeviceLauncher(context), parameters);
        return store;
    }

    /// <summary>10 parameters: one a thread (the flat buffers' parts are not 8-aligned); 24: 8 a thread. ilgpu: the CPU accelerator.</summary>
    [Theory]
    [InlineData(false, 10)]
    [InlineData(true, 10)]
    [InlineData(false, 24)]
    [InlineData(true, 24)]
    public void AdamW_two_steps_match_the_PyTorch_update_in_fp64(bool ilgpu, int count)
    {
        var p = Random(1, count);
        var grads = new[] { Random(2, count), Random(3, count) };
        float scale = 4f;
        var launcher = new DeviceLauncher(context) { UseIlgpuOnCpu = ilgpu };
        using var store = Store(context, p);
        using var scaler = new GradScaler(context, dynamic: true, initialScale: scale);
        using var adam = new AdamW(learningRate: 0.01f, weightDecay: 0.1f);
        foreach (var g in grads)
        {
            store.Write(store.Grads, g.Select(x => x * scale).ToArray());
            scaler.Check(launcher, store.Grads);
            adam.Step<Half, HalfConvert>(launcher, store, scaler);
            scaler.Update(launcher);
        }

        // torch.optim.AdamW: p *= 1 - lr·wd; m, v moments; p -= lr / (1 - β1^t) · m / (√v / √(1 - β2^t) + ε).
        var expected = p.Select(x => (double)x).ToArray();
        var m = new double[p.Length];
        var v = new double[p.Length];
        for (int t = 1; t <= grads.Length; t++)
        {
            for (int i = 0; i < p.Length; i++)
            {
                double g = grads[t - 1][i];
                expected[i] *= 1 - 0.01 * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                expected[i] -= 0.01 / (1 - Math.Pow(0.9, t)) * m[i] / (Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(0.999, t)) + 1e-8);
            }
        }
        RelativeError(store.Read(store.Params), expected).ShouldBeLessThan(1e-6);
        var compute = Download(context, store.Compute);
        compute.Select(h => (float)h).ShouldBe(store.Read(store.Params).Select(x => (float)(System.Half)x).ToArray());
        scaler.ReadState().ShouldBe(new[] { scale, 2f, 2f, 0f });
    }

    /// <summary>9000 gradients: 8 a thread; 9003: one a thread. The bad one in the first, a middle or the last place.</summary>
    [Theory]
    [InlineData(float.PositiveInfinity, 9000, 8500)]
    [InlineData(float.NaN, 9000, 8500)]
    [InlineData(float.NegativeInfinity, 9000, 8999)]
    [InlineData(float.NaN, 9000, 0)]
    [InlineData(float.PositiveInfinity, 9003, 9002)]
    public void GradScaler_skips_a_step_with_non_finite_gradients_and_backs_off(float bad, int count, int at)
    {
        var p = Random(4, count);
        var launcher = new DeviceLauncher(context);
        using var store = Store(context, p);
        using var scaler = new GradScaler(context, dynamic: true, initialScale: 1024f);
        using var adam = new AdamW(learningRate: 0.1f);
        var g = Random(5, p.Length);
        g[at] = bad;
        store.Write(store.Grads, g);
        scaler.Check(launcher, store.Grads);
        adam.Step<Half, HalfConvert>(launcher, store, scaler);
        scaler.Update(launcher);

        store.Read(store.Params).ShouldBe(p);
        store.Read(store.M).ShouldAllBe(x => x == 0f);
        scaler.ReadState().ShouldBe(new[] { 512f, 0f, 0f, 1f }, "scale halved, no optimizer step, one skipped");

        // The flag is cleared: the next clean step goes through and counts.
        store.Write(store.Grads, Random(6, p.Length));
        scaler.Check(launcher, store.Grads);
        adam.Step<Half, HalfConvert>(launcher, store, scaler);
        scaler.Update(launcher);
        store.Read(store.Params).ShouldNotBe(p);
        scaler.ReadState().ShouldBe(new[] { 512f, 1f, 1f, 1f });
    }

    [Fact]
    public void GradScaler_grows_after_the_interval_and_stays_at_one_when_not_dynamic()
    {
        var launcher = new DeviceLauncher(context);
        using var store = Store(context, Random(7, 4));
        using var dynamic = new GradScaler(context, dynamic: true, initialScale: 8f, growthInterval: 2);
        using var fixedScale = new GradScaler(context, dynamic: false);
        foreach (var scaler in new[] { dynamic, fixedScale })
        {
            for (int i = 0; i < 3; i++)
            {
                scaler.Check(launcher, store.Grads);
                scaler.Update(launcher);
            }
        }
        dynamic.ReadState().ShouldBe(new[] { 16f, 1f, 3f, 0f });
        fixedScale.ReadState().ShouldBe(new[] { 1f, 0f, 3f, 0f });
    }
}
