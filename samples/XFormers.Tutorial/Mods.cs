using System;
using System.Linq;
using Spectre.Console;
using XFormers.Dsl;
using XFormers.Reference;
using Half = ILGPU.Half;

namespace XFormers.Tutorial;

public sealed partial class Tutorial
{
    /// <summary>Run-time arguments of this section's mods: a window and a per-token document id.</summary>
    public struct WindowAndDocuments
    {
        public int Window;
        public Tensor<int> DocId;
    }

    // Softcapping (Gemma 2) and a sliding window (Mistral): two C# methods the generator compiles into the kernels, the
    // softcap's derivative included.
    [Attention(HeadDim = 64, DType = DType.Float16, ScoreMod = nameof(Softcap), MaskMod = nameof(SlidingWindow))]
    public static partial AttentionKernel SoftcapWindow();

    static float Softcap(float score, int batch, int head, int q, int kv) => 30f * MathF.Tanh(score / 30f);

    static bool SlidingWindow(int batch, int head, int q, int kv, in WindowAndDocuments args) => q >= kv && q - kv < args.Window;

    // Document masking: many documents packed in one sequence, each token attending (causally) within its own.
    [Attention(HeadDim = 64, DType = DType.Float16, MaskMod = nameof(SameDocument))]
    public static partial AttentionKernel DocumentMask();

    static bool SameDocument(int batch, int head, int q, int kv, in WindowAndDocuments args) => args.DocId[q] == args.DocId[kv] && q >= kv;

    // 9. Score and mask mods: FlexAttention's score_mod and mask_mod, written in C#.
    private void Mods()
    {
        Heading(9, "Score and mask mods");
        int tokens = OnCpu ? 96 : 4096, heads = 4, k = 64, window = OnCpu ? 24 : 1024;
        if (OnCpu)
            Reduced($"{tokens} tokens, a window of {window} (GPU: 4096 and 1024)");
        using var q = Tensor<Half>.RandomNormal(context, 21, 1f, 1, tokens, heads, k);
        using var key = Tensor<Half>.RandomNormal(context, 22, 1f, 1, tokens, heads, k);
        using var value = Tensor<Half>.RandomNormal(context, 23, 1f, 1, tokens, heads, k);
        using var gradOutput = Tensor<Half>.RandomNormal(context, 24, 1f, 1, tokens, heads, k);

        // The window is a run-time argument: no rebuild to change it.
        var softcapWindow = SoftcapWindow().WithArguments(new WindowAndDocuments { Window = window });
        Compile(backward: true, softcapWindow);
        using var forward = softcapWindow.Forward(q, key, value);
        using var grads = softcapWindow.Backward(gradOutput, forward, q, key, value);
        console.WriteLine($"softcap 30 + sliding window {window}: {softcapWindow.Variant.Summary}");
        console.WriteLine($"  backend: {softcapWindow.BackendOn(context.Accelerator)}");

        // The same mods in float64, written again as plain lambdas: the reference the tests use.
        var problem = ReferenceAttention.ProblemFor(q, key) with
        {
            ScoreMod = (s, b, h, i, j) => 30 * Math.Tanh(s / 30),
            MaskMod = (b, h, i, j) => i >= j && i - j < window,
        };
        double[] qd = q.ToDoubleArray(), kd = key.ToDoubleArray(), vd = value.ToDoubleArray();
        var expected = ReferenceAttention.Forward(problem, qd, kd, vd);
        var expectedGrads = ReferenceAttention.Backward(problem, qd, kd, vd, gradOutput.ToDoubleArray());
        console.WriteLine($"  vs float64: output {MaxAbsDiff(forward.Output.ToDoubleArray(), expected.Output):E2}, " +
            $"dQ {MaxAbsDiff(grads.Query.ToDoubleArray(), expectedGrads.Query):E2}, dK {MaxAbsDiff(grads.Key.ToDoubleArray(), expectedGrads.Key):E2}");

        // Document masking with a document-id tensor: 5 documents of uneven lengths in one sequence.
        var lengths = new[] { 9, 30, 1, 40, tokens - 80 };
        var ids = lengths.SelectMany((n, d) => Enumerable.Repeat(d, n)).ToArray();
        using var docId = Tensor<int>.FromArray(context, ids, tokens);
        var documents = DocumentMask().WithArguments(new WindowAndDocuments { DocId = docId });
        Compile(backward: false, documents);
        using var packed = documents.Forward(q, key, value);
        var packedValues = packed.Output.ToDoubleArray();
        // Each document alone, plain causal attention over its own tokens: the same numbers.
        double worst = 0;
        int start = 0;
        foreach (int n in lengths)
        {
            using var alone = Fmha.MemoryEfficientAttention(q.Narrow(1, start, n), key.Narrow(1, start, n), value.Narrow(1, start, n), new LowerTriangularMask());
            worst = Math.Max(worst, MaxAbsDiff(packedValues.Skip(start * heads * k).Take(n * heads * k).ToArray(), alone.ToDoubleArray()));
            start += n;
        }
        console.WriteLine($"document mask over {lengths.Length} documents ({string.Join("/", lengths)} tokens) vs each document alone: max abs diff {worst:E2}");
        console.WriteLine("tiles the mask hides are skipped (a block mask built on the device, cached per shape and arguments); docs/DSL.md");
    }
}
