using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Tests.Training;

/// <summary>Small helpers for the trainer tests: device buffers from host arrays and back, seeded data, fp64 comparisons.</summary>
internal static class TrainingTestUtil
{
    public static MemoryBuffer1D<T, Stride1D.Dense> Upload<T>(XFormersContext context, T[] values)
        where T : unmanaged => context.Accelerator.Allocate1D(values);

    public static T[] Download<T>(XFormersContext context, ArrayView<T> view)
        where T : unmanaged
    {
        context.Synchronize();
        var host = new T[view.Length];
        view.CopyToCPU(host);
        return host;
    }

    public static T[] Download<T>(XFormersContext context, MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged => Download(context, buffer.View.AsContiguous());

    public static float[] Random(int seed, int count, float std = 1f) => HostRandom.Normal(seed, count, std);

    /// <summary>‖actual − expected‖ / ‖expected‖ in fp64.</summary>
    public static double RelativeError(IReadOnlyList<float> actual, IReadOnlyList<double> expected)
    {
        actual.Count.ShouldBe(expected.Count);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            double d = actual[i] - expected[i];
            diff += d * d;
            norm += expected[i] * expected[i];
        }
        return Math.Sqrt(diff / Math.Max(norm, 1e-300));
    }

    public static double[] ToDouble(IEnumerable<float> values) => values.Select(v => (double)v).ToArray();
}
