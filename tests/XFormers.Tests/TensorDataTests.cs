using System.IO;
using System.Runtime.InteropServices;

namespace XFormers.Tests;

/// <summary>
/// What a user's data goes through before and after the kernels: <see cref="System.Half"/> tensors, PyTorch's
/// [B, H, M, K] layout as a strided view, narrowing any dimension, spans in and out, typed safetensors files and
/// the typed bias tensor.
/// </summary>
[Collection(CpuCollection.Name)]
public class TensorDataTests(CpuContextFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    [Fact]
    public void System_Half_matches_the_float64_reference_forward_and_backward()
    {
        var c = new AttentionCase(2, 37, 29, 4, 2, 32, MaskKind.Causal, BiasKind.Tensor, BiasRequiresGrad: true);
        var errors = AttentionCheck.Run<System.Half>(context, c);
        errors.Max.ShouldBeLessThan(AttentionCheck.Tolerance(DType.Float16, 32), errors.ToString());
    }

    [Fact]
    public void System_Half_gives_the_bits_ILGPU_Half_gives()
    {
        int[] shape = { 1, 21, 2, 32 };
        using var q = Tensor<System.Half>.RandomNormal(context, 1, 1f, shape);
        using var k = Tensor<System.Half>.RandomNormal(context, 2, 1f, shape);
        using var v = Tensor<System.Half>.RandomNormal(context, 3, 1f, shape);
        using var dO = Tensor<System.Half>.RandomNormal(context, 4, 1f, shape);
        using var bias = Tensor<System.Half>.RandomNormal(context, 5, 1f, 1, 2, 21, 21);
        using var hq = Tensor<Half>.RandomNormal(context, 1, 1f, shape);
        using var hk = Tensor<Half>.RandomNormal(context, 2, 1f, shape);
        using var hv = Tensor<Half>.RandomNormal(context, 3, 1f, shape);
        using var hdO = Tensor<Half>.RandomNormal(context, 4, 1f, shape);
        using var hbias = Tensor<Half>.RandomNormal(context, 5, 1f, 1, 2, 21, 21);
        var attnBias = new LowerTriangularMask().WithTensorBias(bias, requiresGrad: true);
        var hAttnBias = new LowerTriangularMask().WithTensorBias(hbias, requiresGrad: true);

        using var o = Fmha.MemoryEfficientAttention(q, k, v, attnBias);
        using var forward = Fmha.MemoryEfficientAttentionForward(q, k, v, attnBias);
        using var grads = Fmha.MemoryEfficientAttentionBackward(dO, forward, q, k, v, attnBias);
        using var hForward = Fmha.MemoryEfficientAttentionForward(hq, hk, hv, hAttnBias);
        using var hGrads = Fmha.MemoryEfficientAttentionBackward(hdO, hForward, hq, hk, hv, hAttnBias);

        Bits(o).ShouldBe(Bits(hForward.Output));
        Bits(forward.Output).ShouldBe(Bits(hForward.Output));
        forward.Lse.ToArray().ShouldBe(hForward.Lse.ToArray());
        Bits(grads.Query).ShouldBe(Bits(hGrads.Query));
        Bits(grads.Key).ShouldBe(Bits(hGrads.Key));
        Bits(grads.Value).ShouldBe(Bits(hGrads.Value));
        Bits(grads.Bias!).ShouldBe(Bits(hGrads.Bias!));
        Fmha.SelectKernel(q, k, v, attnBias).Variant.DType.ShouldBe(DType.Float16);
        // The host conversions agree with .NET's own rounding of float to System.Half.
        q.ToFloatArray().ShouldBe(HostRandom.Normal(1, q.ToArray().Length, 1f).Select(x => (float)(System.Half)x).ToArray());
    }

    [Fact]
    public void A_BHMK_buffer_passed_as_a_view_gives_the_dense_BMHK_results()
    {
        const int B = 2, H = 3, M = 19, K = 16;
        var hostQ = HostRandom.Normal(11, B * H * M * K);
        var hostK = HostRandom.Normal(12, B * H * M * K);
        var hostV = HostRandom.Normal(13, B * H * M * K);
        var hostdO = HostRandom.Normal(14, B * H * M * K);

        using var qBhmk = Tensor<float>.FromArray(context, hostQ, B, H, M, K);
        using var kBhmk = Tensor<float>.FromArray(context, hostK, B, H, M, K);
        using var vBhmk = Tensor<float>.FromArray(context, hostV, B, H, M, K);
        using var dOBhmk = Tensor<float>.FromArray(context, hostdO, B, H, M, K);
        var q = qBhmk.Transpose(1, 2);
        q.ShapeString.ShouldBe($"[{B}, {M}, {H}, {K}]");
        q.IsContiguous.ShouldBeFalse();

        // The independent path: the same data transposed on the host into dense BMHK tensors.
        using var qDense = Tensor<float>.FromArray(context, ToBmhk(hostQ, B, H, M, K), B, M, H, K);
        using var kDense = Tensor<float>.FromArray(context, ToBmhk(hostK, B, H, M, K), B, M, H, K);
        using var vDense = Tensor<float>.FromArray(context, ToBmhk(hostV, B, H, M, K), B, M, H, K);
        using var dODense = Tensor<float>.FromArray(context, ToBmhk(hostdO, B, H, M, K), B, M, H, K);
        q.ToArray().ShouldBe(qDense.ToArray());

        var mask = new LowerTriangularMask();
        using var forward = Fmha.MemoryEfficientAttentionForward(q, kBhmk.Transpose(1, 2), vBhmk.Transpose(1, 2), mask);
        using var grads = Fmha.MemoryEfficientAttentionBackward(dOBhmk.Transpose(1, 2), forward, q, kBhmk.Transpose(1, 2), vBhmk.Transpose(1, 2), mask);
        using var expected = Fmha.MemoryEfficientAttentionForward(qDense, kDense, vDense, mask);
        using var expectedGrads = Fmha.MemoryEfficientAttentionBackward(dODense, expected, qDense, kDense, vDense, mask);
        forward.Output.ToArray().ShouldBe(expected.Output.ToArray());
        grads.Query.ToArray().ShouldBe(expectedGrads.Query.ToArray());
        grads.Key.ToArray().ShouldBe(expectedGrads.Key.ToArray());
        grads.Value.ToArray().ShouldBe(expectedGrads.Value.ToArray());

        // And back: the dense BMHK output written into a BHMK tensor through a view.
        using var oBhmk = Tensor<float>.Zeros(context, B, H, M, K);
        oBhmk.Transpose(1, 2).CopyFrom(forward.Output);
        ToBmhk(oBhmk.ToArray(), B, H, M, K).ShouldBe(expected.Output.ToArray());
        // A dense view is read in place.
        using var viaDenseView = Fmha.MemoryEfficientAttention(qDense.AsView(), kDense, vDense, mask);
        viaDenseView.ToArray().ShouldBe(expected.Output.ToArray());
    }

    /// <summary>
    /// A strided view is copied before each launch, so the stale-forward check follows the view's storage: the same views
    /// pass, and a write to the BHMK buffer between forward and backward is caught.
    /// </summary>
    [Fact]
    public void A_write_to_a_viewed_buffer_between_forward_and_backward_is_a_stale_forward()
    {
        const int B = 1, H = 2, M = 9, K = 16;
        using var qBhmk = Tensor<float>.FromArray(context, HostRandom.Normal(21, B * H * M * K), B, H, M, K);
        using var kBhmk = Tensor<float>.FromArray(context, HostRandom.Normal(22, B * H * M * K), B, H, M, K);
        using var vBhmk = Tensor<float>.FromArray(context, HostRandom.Normal(23, B * H * M * K), B, H, M, K);
        using var dOBhmk = Tensor<float>.FromArray(context, HostRandom.Normal(24, B * H * M * K), B, H, M, K);
        using var forward = Fmha.MemoryEfficientAttentionForward(qBhmk.Transpose(1, 2), kBhmk.Transpose(1, 2), vBhmk.Transpose(1, 2));
        using (Fmha.MemoryEfficientAttentionBackward(dOBhmk.Transpose(1, 2), forward, qBhmk.Transpose(1, 2), kBhmk.Transpose(1, 2), vBhmk.Transpose(1, 2)))
        {
        }
        kBhmk.CopyFrom(HostRandom.Normal(25, B * H * M * K));
        var error = Should.Throw<ArgumentException>(() =>
            Fmha.MemoryEfficientAttentionBackward(dOBhmk.Transpose(1, 2), forward, qBhmk.Transpose(1, 2), kBhmk.Transpose(1, 2), vBhmk.Transpose(1, 2)));
        error.Message.ShouldContain("key");
    }

    [Fact]
    public void Narrow_on_the_head_dimension_is_a_strided_view()
    {
        var host = Enumerable.Range(0, 2 * 3 * 4 * 8).Select(i => (float)i).ToArray();
        using var t = Tensor<float>.FromArray(context, host, 2, 3, 4, 8);
        var narrowed = t.AsView().Narrow(3, 2, 4);
        narrowed.ShapeString.ShouldBe("[2, 3, 4, 4]");
        var expected = new List<float>();
        for (int row = 0; row < 2 * 3 * 4; row++)
            expected.AddRange(host.Skip(row * 8 + 2).Take(4));
        narrowed.ToArray().ShouldBe(expected.ToArray());

        using var ones = Tensor<float>.FromArray(context, Enumerable.Repeat(-1f, 2 * 3 * 4 * 4).ToArray(), 2, 3, 4, 4);
        narrowed.CopyFrom(ones);
        var written = t.ToArray();
        for (int i = 0; i < written.Length; i++)
            written[i].ShouldBe(i % 8 is >= 2 and < 6 ? -1f : host[i], $"element {i}");

        var error = Should.Throw<ArgumentException>(() => t.Narrow(3, 2, 4));
        error.Message.ShouldContain("AsView().Narrow(3, 2, 4)");
        Should.Throw<ArgumentOutOfRangeException>(() => t.AsView().Narrow(3, 6, 4)).ParamName.ShouldBe("start");
    }

    [Fact]
    public void Spans_and_memory_copy_in_and_out()
    {
        Span<float> data = stackalloc float[] { 1, 2, 3, 4, 5, 6 };
        using var t = Tensor<float>.FromSpan(context, data, 2, 3);
        var back = new float[6];
        t.CopyTo(back.AsSpan());
        back.ShouldBe(data.ToArray());

        t.CopyFrom(new ReadOnlyMemory<float>(new float[] { 6, 5, 4, 3, 2, 1 }));
        var memory = new Memory<float>(new float[6]);
        t.CopyTo(memory);
        memory.ToArray().ShouldBe(new float[] { 6, 5, 4, 3, 2, 1 });

        Should.Throw<ArgumentException>(() => t.CopyFrom(new float[5].AsSpan())).ParamName.ShouldBe("data");
        Should.Throw<ArgumentException>(() => t.CopyTo(new float[7].AsSpan())).ParamName.ShouldBe("destination");
    }

    [Fact]
    public void Safetensors_files_load_into_typed_tensors()
    {
        string path = Path.Combine(Path.GetTempPath(), $"typed-{Environment.ProcessId}.safetensors");
        try
        {
            var values = new[] { 0f, 1f, -2.5f, 1f / 3f, 65504f, 1e-8f, float.NegativeInfinity, 3.14159265f };
            using (var f32 = Tensor<float>.FromArray(context, values, 2, 4))
            using (var f16 = Tensor<System.Half>.FromArray(context, values.Select(x => (System.Half)x).ToArray(), 2, 4))
            {
                SafeTensorsFile.Save(path, new Dictionary<string, Tensor<float>> { ["w"] = f32 });
                using var asHalf = SafeTensorsFile.LoadTensor<System.Half>(context, path, "w");
                asHalf.ShapeString.ShouldBe("[2, 4]");
                asHalf.ToArray().ShouldBe(values.Select(x => (System.Half)x).ToArray());
                using var asBf16 = SafeTensorsFile.LoadTensor<BFloat16>(context, path, "w");
                asBf16.ToArray().Select(b => b.RawValue).ShouldBe(values.Select(RoundToBFloat16).ToArray());

                SafeTensorsFile.Save(path, new Dictionary<string, Tensor<System.Half>> { ["h"] = f16 });
            }
            using var loaded = SafeTensorsFile.Load<float>(context, path).ShouldHaveSingleItem().Value;
            loaded.ToArray().ShouldBe(values.Select(x => (float)(System.Half)x).ToArray());
            using var ilgpuHalf = SafeTensorsFile.LoadTensor<Half>(context, path, "h");
            MemoryMarshal.Cast<Half, ushort>(ilgpuHalf.ToArray()).ToArray()
                .ShouldBe(values.Select(x => BitConverter.HalfToUInt16Bits((System.Half)x)).ToArray());
            Should.Throw<KeyNotFoundException>(() => SafeTensorsFile.LoadTensor<float>(context, path, "missing")).Message.ShouldContain("h");
            Should.Throw<NotSupportedException>(() => SafeTensorsFile.LoadTensor<int>(context, path, "h")).Message.ShouldContain("F16");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_wrong_element_type_names_the_supported_ones()
    {
        using var q = Tensor<double>.Zeros(context, 1, 4, 1, 16);
        var error = Should.Throw<ArgumentException>(() => Fmha.MemoryEfficientAttention(q, q, q));
        error.ParamName.ShouldBe("query");
        error.Message.ShouldContain("System.Double");
        error.Message.ShouldContain("System.Half");
        Should.Throw<NotSupportedException>(() => Tensor<double>.FromFloats(context, new float[1], 1)).Message.ShouldContain("BFloat16");
    }

    [Fact]
    public void The_bias_tensor_is_typed()
    {
        using var bias = Tensor<float>.Zeros(context, 1, 1, 4, 4);
        var attnBias = new LowerTriangularMask().WithTensorBias(bias);
        attnBias.BiasTensor.ShouldBeSameAs(bias);
        attnBias.BiasTensor!.ElementType.ShouldBe(typeof(float));
        attnBias.BiasTensorAs<float>().ShouldBeSameAs(bias);
        Should.Throw<InvalidOperationException>(() => attnBias.BiasTensorAs<System.Half>()).Message.ShouldContain("Single");
        new LowerTriangularMask().BiasTensorAs<float>().ShouldBeNull();
    }

    private static ushort[] Bits<T>(Tensor<T> tensor)
        where T : unmanaged =>
        MemoryMarshal.Cast<T, ushort>(tensor.ToArray()).ToArray();

    private static float[] ToBmhk(float[] bhmk, int b, int h, int m, int k)
    {
        var result = new float[bhmk.Length];
        for (int bi = 0; bi < b; bi++)
            for (int hi = 0; hi < h; hi++)
                for (int mi = 0; mi < m; mi++)
                    for (int ki = 0; ki < k; ki++)
                        result[((bi * m + mi) * h + hi) * k + ki] = bhmk[((bi * h + hi) * m + mi) * k + ki];
        return result;
    }

    /// <summary>bfloat16 round to nearest even from the float's bits (NaN not needed here).</summary>
    private static ushort RoundToBFloat16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}
