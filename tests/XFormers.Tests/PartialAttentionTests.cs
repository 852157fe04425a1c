using XFormers.Reference;

namespace XFormers.Tests;

/// <summary>Attention over key chunks, merged by log-sum-exp, against the fp64 reference over all the keys.</summary>
[Collection(CpuCollection.Name)]
public class PartialAttentionTests(CpuContextFixture fixture)
{
    private XFormersContext Ctx => fixture.Context;

    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float16)]
    [InlineData(DType.BFloat16)]
    public void ThreeKeyChunksMergeToTheUnsplitResult(DType dtype)
    {
        switch (dtype)
        {
            case DType.Float32: ThreeChunks<float>(); break;
            case DType.Float16: ThreeChunks<Half>(); break;
            default: ThreeChunks<BFloat16>(); break;
        }
    }

    private void ThreeChunks<T>()
        where T : unmanaged
    {
        const int b = 2, mq = 21, hq = 4, hkv = 2, k = 32;
        int[] chunks = { 50, 64, 36 };
        int mkv = chunks.Sum();
        var qd = Rounded<T>(Ctx, HostRandom.Normal(1, b * mq * hq * k));
        var kd = Rounded<T>(Ctx, HostRandom.Normal(2, b * mkv * hkv * k));
        var vd = Rounded<T>(Ctx, HostRandom.Normal(3, b * mkv * hkv * k));
        // A bias that hides chunk 1 from row 3 and every key from row 5: chunks a row does not see, and a row that sees nothing.
        var bias = HostRandom.Normal(4, b * hq * mq * mkv);
        for (int bh = 0; bh < b * hq; bh++)
        {
            for (int j = 0; j < mkv; j++)
            {
                if (j >= chunks[0] && j < chunks[0] + chunks[1])
                    bias[(bh * mq + 3) * mkv + j] = float.NegativeInfinity;
                bias[(bh * mq + 5) * mkv + j] = float.NegativeInfinity;
            }
        }
        var biasd = Rounded<T>(Ctx, bias);

        using var q = Tensor<T>.FromFloats(Ctx, qd.Select(x => (float)x).ToArray(), b, mq, hq, k);
        var outputs = new List<Tensor<T>>();
        var lses = new List<Tensor<float>>();
        var owned = new List<IDisposable>();
        try
        {
            int start = 0;
            foreach (int n in chunks)
            {
                var kc = Tensor<T>.FromFloats(Ctx, SliceDim1(kd, b, mkv, hkv * k, start, n), b, n, hkv, k);
                var vc = Tensor<T>.FromFloats(Ctx, SliceDim1(vd, b, mkv, hkv * k, start, n), b, n, hkv, k);
                var bc = Tensor<T>.FromFloats(Ctx, SliceLast(biasd, b * hq * mq, mkv, start, n), b, hq, mq, n);
                owned.AddRange(new IDisposable[] { kc, vc, bc });
                var part = Fmha.MemoryEfficientAttentionPartial(q, kc, vc, NoMask.Instance.WithTensorBias(bc));
                owned.Add(part);
                outputs.Add(part.Output);
                lses.Add(part.Lse);
                start += n;
            }
            lses[1].ToFloatArray()[3].ShouldBe(float.NegativeInfinity); // row 3 of head 0 sees nothing of chunk 1

            using var merged = Fmha.MergeAttentions(outputs, lses);
            var problem = new ReferenceAttention.Problem(b, mq, mkv, hq, hkv, k, 1.0 / Math.Sqrt(k), Bias: biasd);
            var expected = ReferenceAttention.Forward(problem, qd, kd, vd);
            var dtype = Tensor.DTypeOf(q);
            AttentionCheck.Error(merged.Output.ToDoubleArray(), expected.Output).ShouldBeLessThan(AttentionCheck.Tolerance(dtype, k));
            AttentionCheck.Error(merged.Lse.ToDoubleArray(), expected.Lse).ShouldBeLessThan(1e-5);
            merged.Lse.ToFloatArray()[5].ShouldBe(float.NegativeInfinity);
            merged.Output.ToFloatArray().Skip(5 * hq * k).Take(hq * k).ShouldAllBe(x => x == 0f);
        }
        finally
        {
            foreach (var d in owned)
                d.Dispose();
            q.Dispose();
        }
    }

    [Fact]
    public void MergingOnePartGivesItBack()
    {
        using var q = Tensor<float>.RandomNormal(Ctx, 1, 1f, 1, 9, 2, 16);
        using var kv = Tensor<float>.RandomNormal(Ctx, 2, 1f, 1, 30, 2, 16);
        using var part = Fmha.MemoryEfficientAttentionPartial(q, kv, kv, new LowerTriangularMask());
        using var merged = Fmha.MergeAttentions(new[] { part.Output }, new[] { part.Lse });
        AttentionCheck.Error(merged.Output.ToDoubleArray(), part.Output.ToDoubleArray()).ShouldBeLessThan(1e-6);
        merged.Lse.ToFloatArray().ShouldBe(part.Lse.ToFloatArray());
    }

    [Fact]
    public void MergeChecksItsArguments()
    {
        using var o = Tensor<float>.Zeros(Ctx, 2, 5, 3, 8);
        using var lse = Tensor<float>.Zeros(Ctx, 2, 3, 5);
        using var wrongO = Tensor<float>.Zeros(Ctx, 2, 6, 3, 8);
        using var wrongLse = Tensor<float>.Zeros(Ctx, 2, 5, 3);
        Should.Throw<ArgumentException>(() => Fmha.MergeAttentions(Array.Empty<Tensor<float>>(), Array.Empty<Tensor<float>>())).ParamName.ShouldBe("outputs");
        Should.Throw<ArgumentException>(() => Fmha.MergeAttentions(new[] { o, o }, new[] { lse })).ParamName.ShouldBe("lses");
        var ex = Should.Throw<ArgumentException>(() => Fmha.MergeAttentions(new[] { o, wrongO }, new[] { lse, lse }));
        ex.ParamName.ShouldBe("outputs");
        ex.Message.ShouldContain("outputs[1] is [2, 6, 3, 8]");
        ex = Should.Throw<ArgumentException>(() => Fmha.MergeAttentions(new[] { o, o }, new[] { lse, wrongLse }));
        ex.ParamName.ShouldBe("lses");
        ex.Message.ShouldContain("[2, 3, 5]");
        Should.Throw<ArgumentNullException>(() => Fmha.MergeAttentions(new[] { o }, null!)).ParamName.ShouldBe("lses");
    }

    /// <summary>Data rounded to T, as doubles (the reference sees exactly what the kernels read).</summary>
    internal static double[] Rounded<T>(XFormersContext context, float[] data)
        where T : unmanaged
    {
        using var t = Tensor<T>.FromFloats(context, data, data.Length);
        return t.ToDoubleArray();
    }

    /// <summary>Rows [start, start + count) of dim 1 of a [B, M, width] array, as floats.</summary>
    internal static float[] SliceDim1(double[] data, int batch, int rows, int width, int start, int count)
    {
        var slice = new float[batch * count * width];
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < count; r++)
                for (int e = 0; e < width; e++)
                    slice[(b * count + r) * width + e] = (float)data[((long)b * rows + start + r) * width + e];
        return slice;
    }

    private static float[] SliceLast(double[] data, int outer, int last, int start, int count)
    {
        var slice = new float[outer * count];
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < count; j++)
                slice[o * count + j] = (float)data[(long)o * last + start + j];
        return slice;
    }
}
