using XFormers.Kernels;
using XFormers.Tests.Kernels;

namespace XFormers.Tests;

/// <summary>
/// A NaN or infinity in q, k, v or a bias reaches exactly the outputs and gradients of the rows that can see it: that row
/// (or column) turns non-finite, and every other value is bit for bit what the same call gives without it.
/// </summary>
internal static class NonFinite
{
    /// <summary>Forward (and, with <paramref name="dO"/>, backward) of one call; every result on the host.</summary>
    public static Dictionary<string, float[]> Run<T>(
        XFormersContext c, int[] shape, float[] q, float[] k, float[] v, AttentionBias? bias, float[]? biasData, int[]? biasShape, float[]? dO, AttentionKernel? kernel = null)
        where T : unmanaged
    {
        using var tq = Tensor<T>.FromFloats(c, q, shape);
        using var tk = Tensor<T>.FromFloats(c, k, shape);
        using var tv = Tensor<T>.FromFloats(c, v, shape);
        using var tb = biasData is null ? null : Tensor<T>.FromFloats(c, biasData, biasShape!);
        var attnBias = tb is null ? bias : (bias ?? new NoMask()).WithTensorBias(tb);
        using var forward = Fmha.MemoryEfficientAttentionForward(tq, tk, tv, attnBias, kernel: kernel);
        var result = new Dictionary<string, float[]> { ["O"] = forward.Output.ToFloatArray(), ["Lse"] = forward.Lse.ToFloatArray() };
        if (dO is not null)
        {
            using var tdo = Tensor<T>.FromFloats(c, dO, shape);
            using var grads = Fmha.MemoryEfficientAttentionBackward(tdo, forward, tq, tk, tv, attnBias, kernel: kernel);
            result["dQ"] = grads.Query.ToFloatArray();
            result["dK"] = grads.Key.ToFloatArray();
            result["dV"] = grads.Value.ToFloatArray();
        }
        return result;
    }

    public static float[] Random(int seed, int count) => HostRandom.Normal(seed, count);

    public static float[] With(float[] data, int index, float value)
    {
        var copy = (float[])data.Clone();
        copy[index] = value;
        return copy;
    }

    /// <summary>Row <paramref name="row"/>'s K values of a [1, M, 1, K] result.</summary>
    public static float[] Row(float[] data, int row, int headDim) => data.AsSpan(row * headDim, headDim).ToArray();

    /// <summary>
    /// Checks a [1, M, 1, K] result row by row: rows <paramref name="touched"/> says are touched differ from the clean run
    /// only in non-finite values (in <paramref name="column"/> alone when given, else in every column); the others are
    /// bit-identical to it.
    /// </summary>
    public static void RowsTouchedExactly(float[] clean, float[] dirty, int headDim, Func<int, bool> touched, int? column, string what)
    {
        int rows = clean.Length / headDim;
        for (int i = 0; i < rows; i++)
        {
            for (int d = 0; d < headDim; d++)
            {
                float a = clean[i * headDim + d], b = dirty[i * headDim + d];
                bool shouldBeBad = touched(i) && (column is null || column == d);
                if (shouldBeBad)
                    float.IsFinite(b).ShouldBeFalse($"{what}[{i}, {d}] = {b} should be non-finite");
                else
                    BitConverter.SingleToInt32Bits(b).ShouldBe(BitConverter.SingleToInt32Bits(a), $"{what}[{i}, {d}]: {b} instead of {a}");
            }
        }
    }
}

/// <summary>The portable (SIMT) kernels on the CPU accelerator.</summary>
[Collection(CpuCollection.Name)]
public class NonFiniteTests(CpuContextFixture fixture)
{
    private const int M = 12, K = 32;
    private static readonly int[] Shape = { 1, M, 1, K };
    private readonly float[] q = NonFinite.Random(1, M * K), k = NonFinite.Random(2, M * K), v = NonFinite.Random(3, M * K), dO = NonFinite.Random(4, M * K);

    private Dictionary<string, float[]> Run(float[] q, float[] k, float[] v, AttentionBias? bias = null, float[]? biasData = null) =>
        NonFinite.Run<float>(fixture.Context, Shape, q, k, v, bias, biasData, biasData is null ? null : new[] { 1, 1, M, M }, dO);

    [Fact]
    public void NanInQueryReachesItsRowOnly()
    {
        var clean = Run(q, k, v);
        var dirty = Run(NonFinite.With(q, 3 * K + 5, float.NaN), k, v);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i == 3, null, "O");
        NonFinite.RowsTouchedExactly(clean["Lse"], dirty["Lse"], 1, i => i == 3, null, "Lse");
        float.IsNaN(dirty["Lse"][3]).ShouldBeTrue("a NaN row's log-sum-exp is NaN, not the −∞ of a row that sees no key");
        NonFinite.RowsTouchedExactly(clean["dQ"], dirty["dQ"], K, i => i == 3, null, "dQ");
    }

    [Fact]
    public void InfinityInValueBehindTheCausalMaskStaysThere()
    {
        var mask = new LowerTriangularMask();
        var clean = Run(q, k, v, mask);
        var dirty = Run(q, k, NonFinite.With(v, 5 * K + 2, float.PositiveInfinity), mask);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i >= 5, 2, "O");
        // dV_j = Σ_i P_ij dO_i does not read V; dQ of the rows before key 5 never meets it.
        NonFinite.RowsTouchedExactly(clean["dV"], dirty["dV"], K, _ => false, null, "dV");
        NonFinite.RowsTouchedExactly(NonFinite.Row(clean["dQ"], 0, 5 * K), NonFinite.Row(dirty["dQ"], 0, 5 * K), K, _ => false, null, "dQ");
    }

    [Fact]
    public void NanInKeyReachesTheRowsThatSeeIt()
    {
        var mask = new LowerTriangularMask();
        var clean = Run(q, k, v, mask);
        var dirty = Run(q, NonFinite.With(k, 7 * K, float.NaN), v, mask);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i >= 7, null, "O");
        NonFinite.RowsTouchedExactly(clean["Lse"], dirty["Lse"], 1, i => i >= 7, null, "Lse");
    }

    [Fact]
    public void NanInOneSegmentNeverReachesItsNeighbour()
    {
        var mask = BlockDiagonalMask.FromSeqlens(new[] { 5, 7 });
        var clean = Run(q, k, v, mask);
        var dirty = Run(q, k, NonFinite.With(v, 6 * K + 1, float.NaN), mask);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i >= 5, 1, "O");
        NonFinite.RowsTouchedExactly(NonFinite.Row(clean["dQ"], 0, 5 * K), NonFinite.Row(dirty["dQ"], 0, 5 * K), K, _ => false, null, "dQ of segment 0");
        NonFinite.RowsTouchedExactly(NonFinite.Row(clean["dK"], 0, 5 * K), NonFinite.Row(dirty["dK"], 0, 5 * K), K, _ => false, null, "dK of segment 0");
    }

    [Fact]
    public void NanInABiasEntryBehindTheMaskIsNeverRead()
    {
        var bias = NonFinite.Random(5, M * M);
        var mask = new LowerTriangularMask();
        var clean = Run(q, k, v, mask, bias);
        var hidden = Run(q, k, v, mask, NonFinite.With(bias, 2 * M + 9, float.NaN));
        foreach (var name in clean.Keys)
            NonFinite.RowsTouchedExactly(clean[name], hidden[name], 1, _ => false, null, name);
        var seen = Run(q, k, v, mask, NonFinite.With(bias, 6 * M + 1, float.NaN));
        NonFinite.RowsTouchedExactly(clean["O"], seen["O"], K, i => i == 6, null, "O");
        NonFinite.RowsTouchedExactly(clean["dQ"], seen["dQ"], K, i => i == 6, null, "dQ");
    }

    [Fact]
    public void NanInTheOutputGradientReachesItsRowAndTheKeysItSees()
    {
        var mask = new LowerTriangularMask();
        var clean = Run(q, k, v, mask);
        var dirtyDo = NonFinite.With(dO, 4 * K + 3, float.NaN);
        var dirty = NonFinite.Run<float>(fixture.Context, Shape, q, k, v, mask, null, null, dirtyDo);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, _ => false, null, "O");
        NonFinite.RowsTouchedExactly(clean["dQ"], dirty["dQ"], K, i => i == 4, null, "dQ");
        NonFinite.RowsTouchedExactly(clean["dV"], dirty["dV"], K, j => j <= 4, 3, "dV");
        NonFinite.RowsTouchedExactly(clean["dK"], dirty["dK"], K, j => j <= 4, null, "dK");
    }
}

/// <summary>
/// The tensor-core kernels' CPU twins (32-lane warps, scalar mma), across 64-key tiles: the same code as on CUDA, with the
/// mma multiplying the masked zeros of P and dS by every operand element, so a non-finite one behind the mask is caught
/// only by the kernels' later passes (docs/RELIABILITY.md).
/// </summary>
[Collection(TensorCoreCollection.Name)]
public class TensorCoreNonFiniteTests(TensorCoreFixture fixture)
{
    private const int M = 70, K = 64;
    private static readonly int[] Shape = { 1, M, 1, K };
    private readonly float[] q = NonFinite.Random(1, M * K), k = NonFinite.Random(2, M * K), v = NonFinite.Random(3, M * K);

    /// <summary>The forward only: the tensor-core twins are slow on the CPU, and the backward's guarantees are the portable kernels'.</summary>
    private Dictionary<string, float[]> Run(float[] q, float[] k, float[] v, AttentionBias bias, AttentionKernel kernel) =>
        NonFinite.Run<Half>(fixture.Context, Shape, q, k, v, bias, null, null, null, kernel);

    [Fact]
    public void NanInQueryReachesItsRowOnly()
    {
        var kernel = StockVariants.Causal_None_F16_64();
        ((AttentionKernel<Half>)kernel).UsesTensorCoreBackward(fixture.Context.Accelerator).ShouldBeTrue();
        var mask = new LowerTriangularMask();
        var clean = Run(q, k, v, mask, kernel);
        var dirty = Run(NonFinite.With(q, 3 * K + 5, float.NaN), k, v, mask, kernel);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i == 3, null, "O");
        NonFinite.RowsTouchedExactly(clean["Lse"], dirty["Lse"], 1, i => i == 3, null, "Lse");
        float.IsNaN(dirty["Lse"][3]).ShouldBeTrue();
    }

    [Fact]
    public void ARowMadeNanByItsBiasReachesOnlyTheKeysItSeesInTheBackward()
    {
        // Row 40 sees key 10 through a NaN bias entry: its Lse and D are NaN. The backward's masked entries of that row are
        // exactly 0 in P and dS (not 2^(−∞ − NaN) or 0 · NaN), so keys past 40 of its 64-key tile keep their dK and dV bit
        // for bit; keys ≤ 40 take the NaN (every column), and dQ of row 40 alone.
        var kernel = StockVariants.Causal_Tensor_F16_64();
        ((AttentionKernel<Half>)kernel).UsesTensorCoreBackward(fixture.Context.Accelerator).ShouldBeTrue();
        var mask = new LowerTriangularMask();
        var bias = NonFinite.Random(5, M * M);
        var dO = NonFinite.Random(4, M * K);
        int[] biasShape = { 1, 1, M, M };
        var clean = NonFinite.Run<Half>(fixture.Context, Shape, q, k, v, mask, bias, biasShape, dO, kernel);
        var dirty = NonFinite.Run<Half>(fixture.Context, Shape, q, k, v, mask, NonFinite.With(bias, 40 * M + 10, float.NaN), biasShape, dO, kernel);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i == 40, null, "O");
        NonFinite.RowsTouchedExactly(clean["dQ"], dirty["dQ"], K, i => i == 40, null, "dQ");
        NonFinite.RowsTouchedExactly(clean["dK"], dirty["dK"], K, j => j <= 40, null, "dK");
        NonFinite.RowsTouchedExactly(clean["dV"], dirty["dV"], K, j => j <= 40, null, "dV");
    }

    [Fact]
    public void NanInValueReachesOnlyTheRowsThatSeeIt()
    {
        // Key 40 shares its 64-key tile with rows 0–39, which cannot see it: P·V multiplies their zeros by its NaN in the
        // fast pass, and the poison pass puts NaN back exactly where a row sees it, in that column.
        var kernel = StockVariants.Causal_None_F16_64();
        var mask = new LowerTriangularMask();
        var clean = Run(q, k, v, mask, kernel);
        var dirty = Run(q, k, NonFinite.With(v, 40 * K + 5, float.NaN), mask, kernel);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i >= 40, 5, "O");
        NonFinite.RowsTouchedExactly(clean["Lse"], dirty["Lse"], 1, _ => false, null, "Lse");
    }

    [Fact]
    public void NanInQueryKeyOrDOReachesOnlyTheGradientsOfWhatSeesIt()
    {
        // Causal, one 70-row problem: dK/dV tiles of 64 keys and dQ tiles of 64 rows hold rows and keys on both sides of
        // the NaN. Each case's untouched values are bit for bit those of the clean call.
        var kernel = StockVariants.Causal_None_F16_64();
        var mask = new LowerTriangularMask();
        var dO = NonFinite.Random(4, M * K);
        Dictionary<string, float[]> Backward(float[] q, float[] k, float[] dO) =>
            NonFinite.Run<Half>(fixture.Context, Shape, q, k, v, mask, null, null, dO, kernel);
        var clean = Backward(q, k, dO);

        // dO[20, 5]: dP of row 20 is NaN, so dS of the keys it sees (≤ 20) and dQ of row 20; dV of those keys in column 5
        // only (dV_j = Σ P_ij dO_i).
        var dirty = Backward(q, k, NonFinite.With(dO, 20 * K + 5, float.NaN));
        NonFinite.RowsTouchedExactly(clean["dQ"], dirty["dQ"], K, i => i == 20, null, "dO case: dQ");
        NonFinite.RowsTouchedExactly(clean["dK"], dirty["dK"], K, j => j <= 20, null, "dO case: dK");
        NonFinite.RowsTouchedExactly(clean["dV"], dirty["dV"], K, j => j <= 20, 5, "dO case: dV");

        // q[20, 5]: row 20's scores are NaN; dK += dSᵀ Q multiplies the zeros of keys 21–63 by it in the fast pass.
        dirty = Backward(NonFinite.With(q, 20 * K + 5, float.NaN), k, dO);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i == 20, null, "q case: O");
        NonFinite.RowsTouchedExactly(clean["dQ"], dirty["dQ"], K, i => i == 20, null, "q case: dQ");
        NonFinite.RowsTouchedExactly(clean["dK"], dirty["dK"], K, j => j <= 20, null, "q case: dK");
        NonFinite.RowsTouchedExactly(clean["dV"], dirty["dV"], K, j => j <= 20, null, "q case: dV");

        // k[66, 5]: rows 66–69 see key 66 (their whole rows turn NaN, so every key they see); dQ += dS K multiplies
        // the zeros of rows 64 and 65, which share its tiles, by it in the fast pass.
        dirty = Backward(q, NonFinite.With(k, 66 * K + 5, float.NaN), dO);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i >= 66, null, "k case: O");
        NonFinite.RowsTouchedExactly(clean["dQ"], dirty["dQ"], K, i => i >= 66, null, "k case: dQ");
        NonFinite.RowsTouchedExactly(clean["dK"], dirty["dK"], K, _ => true, null, "k case: dK");
    }

    [Fact]
    public void NanInKeyBehindTheCausalMaskStaysThere()
    {
        var kernel = StockVariants.Causal_None_F16_64();
        var mask = new LowerTriangularMask();
        var clean = Run(q, k, v, mask, kernel);
        var dirty = Run(q, NonFinite.With(k, 40 * K + 2, float.NaN), v, mask, kernel);
        NonFinite.RowsTouchedExactly(clean["O"], dirty["O"], K, i => i >= 40, null, "O");
    }
}
