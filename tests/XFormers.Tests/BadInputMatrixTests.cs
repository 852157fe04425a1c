using XFormers.Reference;

namespace XFormers.Tests;

/// <summary>
/// Bad inputs, one case each: the exact exception type, the argument (or disposed object) it names, and the words of
/// its message. Every case fails before a kernel runs, so none of them can leave the context unusable: the last test
/// runs attention on the same context afterwards.
/// </summary>
[Collection(CpuCollection.Name)]
public class BadInputMatrixTests(CpuContextFixture fixture)
{
    private sealed record BadInput(Type Exception, string? Name, string[] Fragments, Action<XFormersContext> Act);

    private static Tensor<float> F(XFormersContext c, params int[] shape) => Tensor<float>.RandomNormal(c, shape.Sum(), 1f, shape);

    private static Tensor<float> Disposed(XFormersContext c, params int[] shape)
    {
        var t = F(c, shape);
        t.Dispose();
        return t;
    }

    private static BadInput Arg(string name, string[] fragments, Action<XFormersContext> act) => new(typeof(ArgumentException), name, fragments, act);

    private static BadInput Gone(string name, string[] fragments, Action<XFormersContext> act) => new(typeof(ObjectDisposedException), name, fragments, act);

    private static BadInput Range(string name, string[] fragments, Action<XFormersContext> act) => new(typeof(ArgumentOutOfRangeException), name, fragments, act);

    private static BadInput Null(string name, Action<XFormersContext> act) => new(typeof(ArgumentNullException), name, Array.Empty<string>(), act);

    private static readonly int[] Q = { 1, 8, 2, 32 };

    private static readonly Dictionary<string, BadInput> Cases = new()
    {
        // Shapes.
        ["query rank 3"] = Arg("query", new[] { "[2, 8, 32]", "[B, M, H, K]" }, c => Fmha.MemoryEfficientAttention(F(c, 2, 8, 32), F(c, 2, 8, 32), F(c, 2, 8, 32))),
        ["query rank 6"] = Arg("query", new[] { "[1, 1, 1, 1, 1, 8]" }, c => Fmha.MemoryEfficientAttention(F(c, 1, 1, 1, 1, 1, 8), F(c, 1, 1, 1, 1, 1, 8), F(c, 1, 1, 1, 1, 1, 8))),
        ["key rank differs"] = Arg("key", new[] { "expected rank 4" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, 1, 8, 1, 2, 32), F(c, 1, 8, 1, 2, 32))),
        ["value shape differs"] = Arg("value", new[] { "[1, 9, 2, 32]", "[1, 8, 2, 32]" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, 1, 9, 2, 32))),
        ["value head dim differs"] = Arg("value", new[] { "[1, 8, 2, 16]" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, 1, 8, 2, 16))),
        ["key batch differs"] = Arg("key", new[] { "batch 2", "query's 1" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, 2, 8, 2, 32), F(c, 2, 8, 2, 32))),
        ["key head dim differs"] = Arg("key", new[] { "head dim 16", "query's 32" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, 1, 8, 2, 16), F(c, 1, 8, 2, 16))),
        ["head dim zero"] = Arg("query", new[] { "head dim must be positive" }, c => Fmha.MemoryEfficientAttention(F(c, 1, 8, 2, 0), F(c, 1, 8, 2, 0), F(c, 1, 8, 2, 0))),
        ["kv heads do not divide"] = Arg("key", new[] { "3 heads", "4 heads" }, c => Fmha.MemoryEfficientAttention(F(c, 1, 8, 4, 32), F(c, 1, 8, 3, 32), F(c, 1, 8, 3, 32))),
        ["kv heads zero"] = Arg("key", new[] { "0 heads" }, c => Fmha.MemoryEfficientAttention(F(c, 1, 8, 4, 32), F(c, 1, 8, 0, 32), F(c, 1, 8, 0, 32))),
        ["kv heads more than q heads"] = Arg("key", new[] { "4 heads must divide", "2 heads" }, c => Fmha.MemoryEfficientAttention(F(c, 1, 8, 2, 32), F(c, 1, 8, 4, 32), F(c, 1, 8, 4, 32))),
        ["bmghk groups differ"] = Arg("key", new[] { "groups differ" }, c => Fmha.MemoryEfficientAttention(F(c, 1, 8, 2, 2, 32), F(c, 1, 8, 3, 1, 32), F(c, 1, 8, 3, 1, 32))),
        ["bmghk head dim 3 wrong"] = Arg("key", new[] { "must be 1" }, c => Fmha.MemoryEfficientAttention(F(c, 1, 8, 2, 4, 32), F(c, 1, 8, 2, 2, 32), F(c, 1, 8, 2, 2, 32))),
        ["head dim without variant"] = Arg("query", new[] { "head dim 40", "[Attention(" }, c => Fmha.MemoryEfficientAttention(F(c, 1, 8, 2, 40), F(c, 1, 8, 2, 40), F(c, 1, 8, 2, 40))),
        ["int element type"] = Arg("query", new[] { "Int32", "attention takes float" }, c => { var t = Tensor<int>.Zeros(c, Q); Fmha.MemoryEfficientAttention(t, t, t); }),
        ["scale NaN"] = Arg("scale", new[] { "NaN", "not finite" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), null, float.NaN)),
        ["scale infinite"] = Arg("scale", new[] { "not finite" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), null, float.PositiveInfinity)),

        // Nulls.
        ["null query"] = Null("query", c => Fmha.MemoryEfficientAttention(null!, F(c, Q), F(c, Q))),
        ["null key"] = Null("key", c => Fmha.MemoryEfficientAttention(F(c, Q), null!, F(c, Q))),
        ["null value"] = Null("value", c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), null!)),
        ["null forward"] = Null("forward", c => Fmha.MemoryEfficientAttentionBackward(F(c, Q), (AttentionOutput<float>)null!, F(c, Q), F(c, Q), F(c, Q))),
        ["null output"] = Null("output", c => Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), null!, F(c, 1, 2, 8))),
        ["null lse"] = Null("lse", c => Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), F(c, Q), null!)),
        ["null gradKey"] = Null("gradKey", c => Backward(c, nullGradKey: true)),
        ["null shape"] = Null("shape", c => Tensor<float>.Empty(c, null!)),
        ["null data"] = Null("data", c => Tensor<float>.FromArray(c, null!, 2)),

        // Masks and biases.
        ["seqlens sum to fewer tokens"] = Arg("attnBias", new[] { "sum to 7", "has 8" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), BlockDiagonalMask.FromSeqlens(new[] { 3, 4 }))),
        ["kv seqlens sum differs"] = Arg("attnBias", new[] { "key/value seqlens sum to 6" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), BlockDiagonalMask.FromSeqlens(new[] { 4, 4 }, new[] { 3, 3 }))),
        ["block diagonal batch 2"] = Arg("query", new[] { "needs batch 1" }, c => Fmha.MemoryEfficientAttention(F(c, 2, 8, 2, 32), F(c, 2, 8, 2, 32), F(c, 2, 8, 2, 32), BlockDiagonalMask.FromSeqlens(new[] { 8 }))),
        ["negative seqlen"] = Arg("qSeqlen", new[] { "qSeqlen[1] = -1 is negative" }, _ => BlockDiagonalMask.FromSeqlens(new[] { 3, -1 })),
        ["negative kv seqlen"] = Arg("kvSeqlen", new[] { "kvSeqlen[0] = -2" }, _ => BlockDiagonalMask.FromSeqlens(new[] { 3 }, new[] { -2 })),
        ["seqlen counts differ"] = Arg("kvSeqlen", new[] { "1 sequences", "2" }, _ => BlockDiagonalMask.FromSeqlens(new[] { 3, 3 }, new[] { 6 })),
        ["no sequences"] = Arg("qSeqlen", new[] { "at least one sequence" }, _ => BlockDiagonalMask.FromSeqlens(Array.Empty<int>())),
        ["seqlens past 2^31"] = Arg("qSeqlen", new[] { "2^31" }, _ => BlockDiagonalMask.FromSeqlens(new[] { int.MaxValue, 2 })),
        ["bias wrong shape"] = Arg("attnBias", new[] { "[1, 2, 8, 7]", "[1, 2, 8, 8]" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), new TensorBias<float>(F(c, 1, 2, 8, 7)))),
        ["bias rank 3"] = Arg("attnBias", new[] { "[2, 8, 8]" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), new TensorBias<float>(F(c, 2, 8, 8)))),
        ["bias other element type"] = Arg("attnBias", new[] { "element type", "Half" }, c => { var h = Tensor<Half>.Zeros(c, Q); Fmha.MemoryEfficientAttention(h, h, h, new TensorBias<float>(F(c, 1, 2, 8, 8))); }),
        ["bias gradient needs full shape"] = Arg("attnBias", new[] { "full shape", "[1, 1, 8, 8]" }, c => { var q = F(c, Q); var fwd = Fmha.MemoryEfficientAttentionForward(q, q, q, new TensorBias<float>(F(c, 1, 1, 8, 8))); Fmha.MemoryEfficientAttentionBackward(q, fwd, q, q, q, new TensorBias<float>(F(c, 1, 1, 8, 8), requiresGrad: true)); }),
        ["alibi slope count"] = Arg("attnBias", new[] { "3 slopes", "2 heads" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), new AlibiBias(new[] { 1f, 2f, 3f }))),
        ["alibi slope NaN"] = Arg("slopes", new[] { "finite" }, _ => new AlibiBias(new[] { float.NaN })),
        ["alibi no slopes"] = Arg("slopes", new[] { "one slope per query head" }, _ => new AlibiBias(Array.Empty<float>())),
        ["alibi zero heads"] = Range("heads", new[] { "at least one head" }, _ => AlibiBias.DefaultSlopes(0)),
        ["gradBias without bias gradient"] = Arg("gradBias", new[] { "no tensor bias that requires a gradient" }, c => Backward(c, gradBias: F(c, 1, 2, 8, 8))),

        // Outputs and gradients.
        ["output wrong shape"] = Arg("output", new[] { "[1, 8, 2, 16]", "expected [1, 8, 2, 32]" }, c => Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), F(c, 1, 8, 2, 16), F(c, 1, 2, 8))),
        ["lse wrong shape"] = Arg("lse", new[] { "[1, 8, 2]", "expected [1, 2, 8]" }, c => Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), F(c, Q), F(c, 1, 8, 2))),
        ["output aliases query"] = Arg("output", new[] { "shares storage with the input query" }, c => { var q = F(c, Q); Fmha.MemoryEfficientAttentionForward(q, F(c, Q), F(c, Q), q, F(c, 1, 2, 8)); }),
        ["output aliases a view of value"] = Arg("output", new[] { "shares storage with the input value" }, c => { var v = F(c, 1, 16, 2, 32); Fmha.MemoryEfficientAttentionForward(F(c, 1, 16, 2, 32), F(c, 1, 16, 2, 32), v, v.Narrow(1, 0, 16), F(c, 1, 2, 16)); }),
        ["lse aliases output"] = Arg("output", new[] { "shares storage with lse" }, c => { var o = F(c, Q); Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), o, o.Reshape(-1).Narrow(0, 0, 16).Reshape(1, 2, 8)); }),
        ["gradQuery aliases gradKey"] = Arg("gradQuery", new[] { "shares storage with gradKey" }, c => { var g = F(c, Q); Backward(c, gradQuery: g, gradKey: g); }),
        ["gradValue aliases gradKey"] = Arg("gradKey", new[] { "shares storage with gradValue" }, c => { var g = F(c, Q); Backward(c, gradKey: g, gradValue: g); }),
        ["gradQuery aliases gradOutput"] = Arg("gradQuery", new[] { "shares storage with the input gradOutput" }, c => { var g = F(c, Q); Backward(c, gradOutput: g, gradQuery: g); }),
        ["gradKey aliases key"] = Arg("gradKey", new[] { "shares storage with the input key" }, c => { var k = F(c, Q); Backward(c, key: k, gradKey: k); }),
        ["gradValue aliases output"] = Arg("gradValue", new[] { "shares storage with the input output" }, c => { var o = F(c, Q); Backward(c, output: o, gradValue: o); }),
        ["gradOutput wrong shape"] = Arg("gradOutput", new[] { "[1, 8, 2, 16]" }, c => Backward(c, gradOutput: F(c, 1, 8, 2, 16))),
        ["gradKey wrong shape"] = Arg("gradKey", new[] { "[1, 4, 2, 32]" }, c => Backward(c, gradKey: F(c, 1, 4, 2, 32))),

        // Lifetime and ownership.
        ["disposed query"] = Gone("query", new[] { "was disposed" }, c => Fmha.MemoryEfficientAttention(Disposed(c, Q), F(c, Q), F(c, Q))),
        ["disposed key"] = Gone("key", new[] { "was disposed" }, c => Fmha.MemoryEfficientAttention(F(c, Q), Disposed(c, Q), F(c, Q))),
        ["disposed value view"] = Gone("value", new[] { "view of a tensor that was disposed" }, c => { var p = F(c, Q); var v = p.Reshape(Q); p.Dispose(); Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), v); }),
        ["disposed bias"] = Gone("attnBias", new[] { "was disposed" }, c => Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), new TensorBias<float>(Disposed(c, 1, 2, 8, 8)))),
        ["disposed output"] = Gone("output", new[] { "was disposed" }, c => Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), Disposed(c, Q), F(c, 1, 2, 8))),
        ["disposed lse"] = Gone("lse", new[] { "was disposed" }, c => Backward(c, lse: Disposed(c, 1, 2, 8))),
        ["disposed forward"] = Gone("forward", new[] { "was disposed" }, c => { var q = F(c, Q); var fwd = Fmha.MemoryEfficientAttentionForward(q, q, q); fwd.Dispose(); Fmha.MemoryEfficientAttentionBackward(q, fwd, q, q, q); }),
        ["disposed gradValue"] = Gone("gradValue", new[] { "was disposed" }, c => Backward(c, gradValue: Disposed(c, Q))),
        ["disposed view itself"] = Gone("this", new[] { "was disposed" }, c => { var v = F(c, Q).Reshape(-1); v.Dispose(); v.ToArray(); }),
        ["disposed tensor to pack"] = Gone("tensors[1]", new[] { "was disposed" }, c => BlockDiagonalMask.FromTensorList(new[] { F(c, 1, 3, 2, 32), Disposed(c, 1, 4, 2, 32) })),
        ["split of a disposed tensor"] = Gone("tensor", new[] { "was disposed" }, c => BlockDiagonalMask.FromSeqlens(new[] { 3, 5 }).Split(Disposed(c, Q))),
        ["disposed CopyFrom source"] = Gone("source", new[] { "was disposed" }, c => F(c, Q).CopyFrom(Disposed(c, Q))),
        ["key on another context"] = Arg("key", new[] { "another context" }, c => { using var other = XFormersContext.CreateCpu(1); Fmha.MemoryEfficientAttention(F(c, Q), F(other, Q), F(c, Q)); }),
        ["bias on another context"] = Arg("attnBias", new[] { "another context" }, c => { using var other = XFormersContext.CreateCpu(1); Fmha.MemoryEfficientAttention(F(c, Q), F(c, Q), F(c, Q), new TensorBias<float>(F(other, 1, 2, 8, 8))); }),
        ["gradQuery on another context"] = Arg("gradQuery", new[] { "another context" }, c => { using var other = XFormersContext.CreateCpu(1); Backward(c, gradQuery: F(other, Q)); }),
        ["CopyFrom another context"] = Arg("source", new[] { "another context" }, c => { using var other = XFormersContext.CreateCpu(1); F(c, Q).CopyFrom(F(other, Q)); }),

        // Kernels.
        ["kernel of another mask"] = Arg("kernel", new[] { "its mask is Causal", "attnBias asks for None" }, c => Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), kernel: Fmha.SelectKernel(F(c, Q), F(c, Q), F(c, Q), new LowerTriangularMask()))),
        ["kernel of another head dim"] = Arg("kernel", new[] { "its head dim is 16" }, c => Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), kernel: Fmha.SelectKernel(F(c, 1, 8, 2, 16), F(c, 1, 8, 2, 16), F(c, 1, 8, 2, 16)))),
        ["kernel of another dtype"] = Arg("kernel", new[] { "it takes Float16 tensors" }, c => { var h = Tensor<Half>.Zeros(c, Q); Fmha.MemoryEfficientAttentionForward(F(c, Q), F(c, Q), F(c, Q), kernel: Fmha.SelectKernel(h, h, h)); }),

        // Tensors.
        ["negative dimension"] = Arg("shape", new[] { "[2, -1]", "negative dimension" }, c => Tensor<float>.Empty(c, 2, -1)),
        ["byte count past 2^63"] = Arg("shape", new[] { "[1073741824, 1073741824, 4]", "64-bit byte count" }, c => Tensor<float>.Empty(c, 1 << 30, 1 << 30, 4)),
        ["element count past 2^63"] = Arg("shape", new[] { "[2147483647, 2147483647, 2147483647]" }, c => Tensor<Half>.Zeros(c, int.MaxValue, int.MaxValue, int.MaxValue)),
        ["more than the device holds"] = Arg("shape", new[] { "needs 4503599627370496 bytes", "holds at most" }, c => Tensor<float>.Empty(c, 1 << 20, 1 << 20, 1 << 10)),
        ["random past a host array"] = Arg("shape", new[] { "more than a host array holds" }, c => Tensor<float>.RandomNormal(c, 1, 1f, 1 << 16, 1 << 16)),
        ["FromArray length mismatch"] = Arg("data", new[] { "data has 5 elements", "needs 6" }, c => Tensor<float>.FromArray(c, new float[5], 2, 3)),
        ["CopyFrom length mismatch"] = Arg("data", new[] { "data has 5 elements" }, c => F(c, 2, 3).CopyFrom(new float[5])),
        ["CopyFrom tensor length mismatch"] = Arg("source", new[] { "has 4 elements" }, c => F(c, 2, 3).CopyFrom(F(c, 4))),
        ["reshape count differs"] = Arg("newShape", new[] { "[4, 2] has 8 elements", "has 6" }, c => F(c, 2, 3).Reshape(4, 2)),
        ["reshape cannot infer"] = Arg("newShape", new[] { "cannot infer -1" }, c => F(c, 2, 3).Reshape(-1, 4)),
        ["narrow dim out of range"] = Range("dim", new[] { "dim 3 is outside a rank-2 tensor" }, c => F(c, 2, 3).Narrow(3, 0, 1)),
        ["narrow rows out of range"] = Range("start", new[] { "rows [2, 4)" }, c => F(c, 1, 3).Narrow(1, 2, 2)),
        ["narrow start overflow"] = Range("start", new[] { "outside dim 1" }, c => F(c, 1, 3).Narrow(1, int.MaxValue, int.MaxValue)),
        ["narrow non-contiguous"] = Arg("dim", new[] { "every earlier dimension to be 1" }, c => F(c, 2, 3).Narrow(1, 0, 1)),
        ["device variable unknown"] = Arg(XFormersContext.DeviceVariable, new[] { "'tpu' is not one of cpu, cuda, auto" }, _ => WithDevice("tpu", XFormersContext.PreferenceFromEnvironment)),
    };

    public static TheoryData<string> Names => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(Names))]
    public void FailsWithTheDocumentedException(string name)
    {
        var c = Cases[name];
        var ex = Should.Throw<Exception>(() => c.Act(fixture.Context));
        ex.GetType().ShouldBe(c.Exception, $"{name}: {ex}");
        string? named = ex is ObjectDisposedException disposed ? disposed.ObjectName : ((ArgumentException)ex).ParamName;
        named.ShouldBe(c.Name, name);
        foreach (var fragment in c.Fragments)
            ex.Message.ShouldContain(fragment, Shouldly.Case.Sensitive, name);
    }

    [Fact]
    public void MatrixHasAtLeastSixtyCases() => Cases.Count.ShouldBeGreaterThanOrEqualTo(60);

    [Fact]
    public void TheContextStillWorksAfterEveryCase()
    {
        foreach (var c in Cases.Values)
            Should.Throw<Exception>(() => c.Act(fixture.Context));
        var data = Enumerable.Range(0, 1 * 4 * 1 * 16).Select(i => (float)Math.Sin(i)).ToArray();
        using var q = Tensor<float>.FromArray(fixture.Context, data, 1, 4, 1, 16);
        using var o = Fmha.MemoryEfficientAttention(q, q, q);
        var d = data.Select(x => (double)x).ToArray();
        var expected = ReferenceAttention.Forward(new ReferenceAttention.Problem(1, 4, 4, 1, 1, 16, 0.25), d, d, d);
        o.ToDoubleArray().Zip(expected.Output).ShouldAllBe(p => Math.Abs(p.First - p.Second) < 1e-5);
    }

    /// <summary>A backward with every argument valid, except those given.</summary>
    private static void Backward(
        XFormersContext c, Tensor<float>? gradOutput = null, Tensor<float>? output = null, Tensor<float>? lse = null, Tensor<float>? key = null,
        Tensor<float>? gradQuery = null, Tensor<float>? gradKey = null, Tensor<float>? gradValue = null, Tensor<float>? gradBias = null,
        bool nullGradKey = false)
    {
        Fmha.MemoryEfficientAttentionBackward(
            gradOutput ?? F(c, Q), output ?? F(c, Q), lse ?? F(c, 1, 2, 8), F(c, Q), key ?? F(c, Q), F(c, Q),
            gradQuery ?? F(c, Q), nullGradKey ? null! : gradKey ?? F(c, Q), gradValue ?? F(c, Q), gradBias);
    }

    private static T WithDevice<T>(string value, Func<T> read)
    {
        var before = Environment.GetEnvironmentVariable(XFormersContext.DeviceVariable);
        Environment.SetEnvironmentVariable(XFormersContext.DeviceVariable, value);
        try
        {
            return read();
        }
        finally
        {
            Environment.SetEnvironmentVariable(XFormersContext.DeviceVariable, before);
        }
    }
}
