using XFormers.Reference;

namespace XFormers.Tests;

/// <summary>
/// KV-cache masks (padded and paged keys, causal with offset) and split-KV decoding, against the fp64 reference run
/// sequence by sequence on each sequence's own keys (no mask, or causal from the bottom right).
/// </summary>
[Collection(CpuCollection.Name)]
public class KvCacheTests(CpuContextFixture fixture)
{
    private const int Hq = 4, Hkv = 2, K = 32;

    private XFormersContext Ctx => fixture.Context;

    [Theory]
    [InlineData(false, DType.Float32)]
    [InlineData(true, DType.Float32)]
    [InlineData(false, DType.Float16)]
    [InlineData(true, DType.Float16)]
    public void PaddedCacheMatchesThePerSequenceReference(bool causal, DType dtype)
    {
        // Empty sequences, empty caches, a full cache, and (causal) more queries than keys.
        int[] qSeqlen = { 3, 0, 1, 5, 2 }, kvSeqlen = { 7, 4, 0, 24, 1 };
        const int padding = 24;
        KvCacheMask mask = causal
            ? BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen)
            : BlockDiagonalPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen);
        var keyRows = kvSeqlen.Select((n, s) => Enumerable.Range(s * padding, n).ToArray()).ToArray();
        if (dtype == DType.Float32)
            Check<float>(mask, qSeqlen.Length * padding, keyRows, chunks: null);
        else
            Check<Half>(mask, qSeqlen.Length * padding, keyRows, chunks: null);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SplitKvMatchesThePerSequenceReference(bool causal)
    {
        // Decoding: one to three new tokens per sequence over caches of hundreds of keys, cut into three chunks.
        int[] qSeqlen = { 1, 2, 1, 0, 3 }, kvSeqlen = { 600, 513, 0, 100, 2 };
        const int padding = 640;
        KvCacheMask mask = causal
            ? BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen)
            : BlockDiagonalPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen);
        var keyRows = kvSeqlen.Select((n, s) => Enumerable.Range(s * padding, n).ToArray()).ToArray();
        Check<float>(mask, qSeqlen.Length * padding, keyRows, chunks: 3);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PagedCacheMatchesThePerSequenceReference(bool causal)
    {
        // Pages of 4 in shuffled order; lengths that are not page multiples; unused table entries hold -1 and are not read.
        const int pageSize = 4, pages = 24;
        int[] qSeqlen = { 2, 1, 3, 1 }, kvSeqlen = { 5, 0, 13, 8 };
        var order = Enumerable.Range(0, pages).OrderBy(p => (p * 7919) % pages).ToArray();
        var table = new int[4, 4];
        int next = 0;
        for (int s = 0; s < 4; s++)
            for (int p = 0; p < 4; p++)
                table[s, p] = p * pageSize < kvSeqlen[s] ? order[next++] : -1;
        var padded = causal
            ? (KvCacheMask)BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(qSeqlen, 16, kvSeqlen)
            : BlockDiagonalPaddedKeysMask.FromSeqlens(qSeqlen, 16, kvSeqlen);
        KvCacheMask mask = padded switch
        {
            BlockDiagonalPaddedKeysMask m => m.MakePaged(table, pageSize),
            BlockDiagonalCausalWithOffsetPaddedKeysMask m => m.MakePaged(table, pageSize),
            _ => throw new InvalidOperationException(),
        };
        mask.ShouldBeOfType(causal ? typeof(PagedBlockDiagonalCausalWithOffsetPaddedKeysMask) : typeof(PagedBlockDiagonalPaddedKeysMask));
        var keyRows = kvSeqlen.Select((n, s) => Enumerable.Range(0, n).Select(t => table[s, t / pageSize] * pageSize + t % pageSize).ToArray()).ToArray();
        Check<float>(mask, pages * pageSize, keyRows, chunks: null);
        Check<float>(mask, pages * pageSize, keyRows, chunks: 2);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EmptyCachesGiveZeroRowsAndMinusInfinity(bool causal)
    {
        var table = new int[,] { { -1 }, { -1 } };
        KvCacheMask mask = causal
            ? PagedBlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(new[] { 2, 1 }, new[] { 0, 0 }, table, 4)
            : PagedBlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 2, 1 }, new[] { 0, 0 }, table, 4);
        using var q = Tensor<float>.RandomNormal(Ctx, 1, 1f, 1, 3, Hq, K);
        using var key = Tensor<float>.RandomNormal(Ctx, 2, 1f, 1, 8, Hkv, K);
        using var result = Fmha.MemoryEfficientAttentionPartial(q, key, key, mask);
        result.Output.ToFloatArray().ShouldAllBe(x => x == 0f);
        result.Lse.ToFloatArray().ShouldAllBe(x => float.IsNegativeInfinity(x));
    }

    [Fact]
    public void PaddedKeysRunForwardAndBackwardThroughTheBlockDiagonalKernels()
    {
        int[] qSeqlen = { 3, 0, 6 }, kvSeqlen = { 5, 2, 7 };
        const int padding = 8, mkv = 3 * padding;
        var mask = BlockDiagonalPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen);
        int mq = qSeqlen.Sum();
        using var q = Tensor<float>.RandomNormal(Ctx, 1, 1f, 1, mq, Hq, K);
        using var key = Tensor<float>.RandomNormal(Ctx, 2, 1f, 1, mkv, Hkv, K);
        using var value = Tensor<float>.RandomNormal(Ctx, 3, 1f, 1, mkv, Hkv, K);
        using var dO = Tensor<float>.RandomNormal(Ctx, 4, 1f, 1, mq, Hq, K);
        using var forward = Fmha.MemoryEfficientAttentionForward(q, key, value, mask);
        using var grads = Fmha.MemoryEfficientAttentionBackward(dO, forward, q, key, value, mask);

        double[] qd = q.ToDoubleArray(), kd = key.ToDoubleArray(), vd = value.ToDoubleArray(), dOd = dO.ToDoubleArray();
        var expectedO = new double[qd.Length];
        var dq = new double[qd.Length];
        var dk = new double[kd.Length];
        var dv = new double[vd.Length];
        int qStart = 0;
        for (int s = 0; s < qSeqlen.Length; s++)
        {
            int n = qSeqlen[s], m = kvSeqlen[s];
            var rows = Enumerable.Range(s * padding, m).ToArray();
            var p = new ReferenceAttention.Problem(1, n, m, Hq, Hkv, K, 1.0 / Math.Sqrt(K));
            var qs = Rows(qd, Enumerable.Range(qStart, n).ToArray(), Hq * K);
            var ks = Rows(kd, rows, Hkv * K);
            var vs = Rows(vd, rows, Hkv * K);
            var f = ReferenceAttention.Forward(p, qs, ks, vs);
            var g = ReferenceAttention.Backward(p, qs, ks, vs, Rows(dOd, Enumerable.Range(qStart, n).ToArray(), Hq * K));
            Array.Copy(f.Output, 0, expectedO, qStart * Hq * K, f.Output.Length);
            Array.Copy(g.Query, 0, dq, qStart * Hq * K, g.Query.Length);
            Array.Copy(g.Key, 0, dk, s * padding * Hkv * K, g.Key.Length);
            Array.Copy(g.Value, 0, dv, s * padding * Hkv * K, g.Value.Length);
            qStart += n;
        }
        AttentionCheck.Error(forward.Output.ToDoubleArray(), expectedO).ShouldBeLessThan(1e-5);
        AttentionCheck.Error(grads.Query.ToDoubleArray(), dq).ShouldBeLessThan(1e-5);
        AttentionCheck.Error(grads.Key.ToDoubleArray(), dk).ShouldBeLessThan(1e-5);   // padding rows: zero
        AttentionCheck.Error(grads.Value.ToDoubleArray(), dv).ShouldBeLessThan(1e-5);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(3, true)]
    public void DenseDecodingSplitsTheKeysAndMatchesTheReference(int mq, bool causal)
    {
        // One query head over 1100 keys: fewer groups than the device has multiprocessors, so the keys are split.
        const int batch = 2, mkv = 1100, heads = 1;
        Fmha.SplitKvChunks(1, heads, mkv - mq + 1, Math.Max(1, Ctx.Accelerator.NumMultiprocessors)).ShouldBeGreaterThan(1);
        using var q = Tensor<float>.RandomNormal(Ctx, 1, 1f, batch, mq, heads, K);
        using var key = Tensor<float>.RandomNormal(Ctx, 2, 1f, batch, mkv, heads, K);
        using var value = Tensor<float>.RandomNormal(Ctx, 3, 1f, batch, mkv, heads, K);
        AttentionBias? mask = causal ? new LowerTriangularFromBottomRightMask() : null;
        using var o = Fmha.MemoryEfficientAttention(q, key, value, mask);
        var problem = new ReferenceAttention.Problem(batch, mq, mkv, heads, heads, K, 1.0 / Math.Sqrt(K), causal ? MaskKind.CausalFromBottomRight : MaskKind.None);
        var expected = ReferenceAttention.Forward(problem, q.ToDoubleArray(), key.ToDoubleArray(), value.ToDoubleArray());
        AttentionCheck.Error(o.ToDoubleArray(), expected.Output).ShouldBeLessThan(1e-5);
    }

    [Theory]
    [InlineData(1, false, 4, 300)]
    [InlineData(1, false, 2, 1100)]
    [InlineData(3, true, 4, 700)]
    [InlineData(2, false, 8, 90)]
    public void GroupedQueryDecodingPacksTheHeadsAndMatchesTheReference(int mq, bool causal, int group, int mkv)
    {
        // Query heads that share a key head run as rows of one launch head (each key tile read once for the group), through
        // the padded KV-cache mask with and without a key split, and with the causal diagonal of Mq > 1 beside the packed
        // unmasked keys; the same batch dense, as one call.
        const int batch = 3, hkv = 2;
        int hq = group * hkv;
        using var q = Tensor<float>.RandomNormal(Ctx, 1, 1f, batch, mq, hq, K);
        using var key = Tensor<float>.RandomNormal(Ctx, 2, 1f, batch, mkv, hkv, K);
        using var value = Tensor<float>.RandomNormal(Ctx, 3, 1f, batch, mkv, hkv, K);
        AttentionBias? mask = causal ? new LowerTriangularFromBottomRightMask() : null;
        Fmha.PacksHeads<float>(AttentionProblem.Create(q, key, value, mask, null), Ctx).ShouldBeTrue();
        var problem = new ReferenceAttention.Problem(batch, mq, mkv, hq, hkv, K, 1.0 / Math.Sqrt(K), causal ? MaskKind.CausalFromBottomRight : MaskKind.None);
        var expected = ReferenceAttention.Forward(problem, q.ToDoubleArray(), key.ToDoubleArray(), value.ToDoubleArray());

        var qSeqlen = Enumerable.Repeat(mq, batch).ToArray();
        var kvSeqlen = Enumerable.Repeat(mkv, batch).ToArray();
        KvCacheMask padded = causal
            ? BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(qSeqlen, mkv, kvSeqlen)
            : BlockDiagonalPaddedKeysMask.FromSeqlens(qSeqlen, mkv, kvSeqlen);
        foreach (int? chunks in new int?[] { null, 1, 3 })
        {
            using var output = Tensor<float>.Empty(Ctx, 1, batch * mq, hq, K);
            Fmha.KvCacheForward(q.Reshape(1, batch * mq, hq, K), key.Reshape(1, batch * mkv, hkv, K), value.Reshape(1, batch * mkv, hkv, K),
                padded, null, output, null, chunks);
            AttentionCheck.Error(output.ToDoubleArray(), expected.Output).ShouldBeLessThan(1e-5);
        }
        using var o = Fmha.MemoryEfficientAttention(q, key, value, mask);
        AttentionCheck.Error(o.ToDoubleArray(), expected.Output).ShouldBeLessThan(1e-5);
    }

    [Fact]
    public void DenseDecodingWithoutABlockDiagonalVariantRunsUnsplit()
    {
        // Head dim 48 has a declared variant without a mask (UserVariantTests) and no block-diagonal one to split with.
        const int k = 48, mkv = 1100;
        using var q = Tensor<float>.RandomNormal(Ctx, 1, 1f, 1, 1, 1, k);
        using var key = Tensor<float>.RandomNormal(Ctx, 2, 1f, 1, mkv, 1, k);
        using var o = Fmha.MemoryEfficientAttention(q, key, key);
        var problem = new ReferenceAttention.Problem(1, 1, mkv, 1, 1, k, 1.0 / Math.Sqrt(k));
        var expected = ReferenceAttention.Forward(problem, q.ToDoubleArray(), key.ToDoubleArray(), key.ToDoubleArray());
        AttentionCheck.Error(o.ToDoubleArray(), expected.Output).ShouldBeLessThan(1e-5);
    }

    [Fact]
    public void SplitKvHeuristicFillsTheDeviceAndNoMore()
    {
        // H200: 132 SMs. B64 × 32 heads already fill it; B8 × 32 heads over 32768 keys need two chunks; one head needs many.
        Fmha.SplitKvChunks(queryTiles: 64, heads: 32, longestKeys: 8192, multiprocessors: 132).ShouldBe(1);
        Fmha.SplitKvChunks(queryTiles: 8, heads: 32, longestKeys: 32768, multiprocessors: 132).ShouldBe(2);
        Fmha.SplitKvChunks(queryTiles: 1, heads: 8, longestKeys: 32768, multiprocessors: 132).ShouldBe(33);
        Fmha.SplitKvChunks(queryTiles: 1, heads: 1, longestKeys: 1 << 20, multiprocessors: 132).ShouldBe(Fmha.SplitKvMaxChunks);
        Fmha.SplitKvChunks(queryTiles: 1, heads: 1, longestKeys: 600, multiprocessors: 132).ShouldBe(2);   // chunks of 256 keys at least
        Fmha.SplitKvChunks(queryTiles: 1, heads: 1, longestKeys: 300, multiprocessors: 132).ShouldBe(1);
    }

    [Fact]
    public void SystemHalfRunsTheSameKernels()
    {
        int[] qSeqlen = { 2, 3 }, kvSeqlen = { 9, 4 };
        var mask = BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(qSeqlen, 12, kvSeqlen);
        using var q = Tensor<Half>.RandomNormal(Ctx, 1, 1f, 1, 5, Hq, K);
        using var key = Tensor<Half>.RandomNormal(Ctx, 2, 1f, 1, 24, Hkv, K);
        using var o = Fmha.MemoryEfficientAttention(q, key, key, mask);
        using var q16 = Tensor<System.Half>.FromArray(Ctx, q.ToArray().Select(x => (System.Half)(float)x).ToArray(), 1, 5, Hq, K);
        using var key16 = Tensor<System.Half>.FromArray(Ctx, key.ToArray().Select(x => (System.Half)(float)x).ToArray(), 1, 24, Hkv, K);
        using var o16 = Fmha.MemoryEfficientAttention(q16, key16, key16, mask);
        o16.ToArray().Select(x => (float)x).ShouldBe(o.ToArray().Select(x => (float)x));
    }

    [Fact]
    public void MasksCheckTheirArguments()
    {
        ShouldName(() => BlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 1, 1 }, 8, new[] { 3, 9 }), "kvSeqlen", "kvSeqlen[1] = 9", "kvPadding = 8");
        ShouldName(() => BlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 1 }, -1, new[] { 0 }), "kvPadding");
        ShouldName(() => BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(new[] { 1, 2 }, 8, new[] { 3 }), "kvSeqlen");
        ShouldName(() => BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(new[] { -1 }, 8, new[] { 3 }), "qSeqlen");
        var table = new int[,] { { 0, 1 }, { 2, -1 } };
        ShouldName(() => PagedBlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 1, 1 }, new[] { 8, 4 }, table, 0), "pageSize");
        ShouldName(() => PagedBlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 1 }, new[] { 8 }, table, 4), "blockTable", "2 rows");
        ShouldName(() => PagedBlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 1, 1 }, new[] { 8, 9 }, table, 4), "kvSeqlen", "needs 3 pages");
        ShouldName(() => PagedBlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(new[] { 1, 1 }, new[] { 8, 5 }, table, 4), "blockTable", "blockTable[1, 1] = -1");
    }

    [Fact]
    public void CallsCheckTheCacheAgainstTheTensors()
    {
        using var q = Tensor<float>.Zeros(Ctx, 1, 3, Hq, K);
        using var key = Tensor<float>.Zeros(Ctx, 1, 16, Hkv, K);
        using var dO = Tensor<float>.Zeros(Ctx, 1, 3, Hq, K);
        var padded = BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(new[] { 1, 2 }, 6, new[] { 4, 6 });
        ShouldName(() => Fmha.MemoryEfficientAttention(q, key, key, padded), "attnBias", "need 12 key rows", "key has 16");
        var fewerQueries = BlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 1, 1 }, 8, new[] { 4, 6 });
        ShouldName(() => Fmha.MemoryEfficientAttentionPartial(q, key, key, fewerQueries), "attnBias", "sum to 2", "query has 3");
        var paged = PagedBlockDiagonalPaddedKeysMask.FromSeqlens(new[] { 1, 2 }, new[] { 4, 5 }, new[,] { { 3, 0 }, { 1, 4 } }, 4);
        ShouldName(() => Fmha.MemoryEfficientAttention(q, key, key, paged), "attnBias", "blockTable[1, 1] = 4", "4 pages");
        using var key15 = Tensor<float>.Zeros(Ctx, 1, 15, Hkv, K);
        ShouldName(() => Fmha.MemoryEfficientAttention(q, key15, key15, paged), "attnBias", "not a whole number of pages");
        using var q2 = Tensor<float>.Zeros(Ctx, 2, 3, Hq, K);
        using var key2 = Tensor<float>.Zeros(Ctx, 2, 16, Hkv, K);
        ShouldName(() => Fmha.MemoryEfficientAttention(q2, key2, key2, fewerQueries), "query", "batch 1");
        // Causal-with-offset and paged masks have no single-kernel form: the forward with a recorded LSE and the backward refuse them.
        ShouldName(() => Fmha.MemoryEfficientAttentionForward(q, key, key, paged), "attnBias", "MemoryEfficientAttentionPartial");
        using var fakeForward = new AttentionOutput<float>(Tensor<float>.Zeros(Ctx, 1, 3, Hq, K), Tensor<float>.Zeros(Ctx, 1, Hq, 3));
        ShouldName(() => Fmha.MemoryEfficientAttentionBackward(dO, fakeForward, q, key, key, padded), "attnBias");
    }

    private static void ShouldName(Action action, string argument, params string[] messageParts)
    {
        var ex = Should.Throw<ArgumentException>(action);
        ex.ParamName.ShouldBe(argument);
        foreach (var part in messageParts)
            ex.Message.ShouldContain(part);
    }

    /// <summary>
    /// Runs <paramref name="mask"/> (through the partial forward, with <paramref name="chunks"/> forced when given) and
    /// checks O and LSE against the fp64 reference on each sequence's keys, <paramref name="keyRows"/>[s] in order.
    /// </summary>
    private void Check<T>(KvCacheMask mask, int cacheRows, int[][] keyRows, int? chunks)
        where T : unmanaged
    {
        int mq = mask.TotalQ;
        using var q = Tensor<T>.RandomNormal(Ctx, 1, 1f, 1, mq, Hq, K);
        using var key = Tensor<T>.RandomNormal(Ctx, 2, 1f, 1, cacheRows, Hkv, K);
        using var value = Tensor<T>.RandomNormal(Ctx, 3, 1f, 1, cacheRows, Hkv, K);
        using var output = Tensor<T>.Empty(Ctx, 1, mq, Hq, K);
        using var lse = Tensor<float>.Empty(Ctx, 1, Hq, mq);
        if (chunks is null)
        {
            using var partial = Fmha.MemoryEfficientAttentionPartial(q, key, value, mask);
            output.CopyFrom(partial.Output);
            lse.CopyFrom(partial.Lse);
            using var plain = Fmha.MemoryEfficientAttention(q, key, value, mask);
            plain.ToArray().ShouldBe(output.ToArray());
        }
        else
        {
            Fmha.KvCacheForward(q, key, value, mask, null, output, lse, chunks);
        }

        double[] qd = q.ToDoubleArray(), kd = key.ToDoubleArray(), vd = value.ToDoubleArray();
        var expectedO = new double[qd.Length];
        var expectedLse = new double[Hq * mq];
        for (int s = 0; s < mask.Count; s++)
        {
            int n = mask.QSeqlens[s], start = mask.QSeqStarts[s], m = keyRows[s].Length;
            var p = new ReferenceAttention.Problem(1, n, m, Hq, Hkv, K, 1.0 / Math.Sqrt(K), mask.IsCausalWithOffset ? MaskKind.CausalFromBottomRight : MaskKind.None);
            var f = ReferenceAttention.Forward(p, Rows(qd, Enumerable.Range(start, n).ToArray(), Hq * K), Rows(kd, keyRows[s], Hkv * K), Rows(vd, keyRows[s], Hkv * K));
            Array.Copy(f.Output, 0, expectedO, start * Hq * K, f.Output.Length);
            for (int h = 0; h < Hq; h++)
                Array.Copy(f.Lse, h * n, expectedLse, h * mq + start, n);
        }
        var dtype = Tensor.DTypeOf(q);
        AttentionCheck.Error(output.ToDoubleArray(), expectedO).ShouldBeLessThan(AttentionCheck.Tolerance(dtype, K));
        AttentionCheck.Error(lse.ToDoubleArray(), expectedLse).ShouldBeLessThan(1e-5);
    }

    private static double[] Rows(double[] data, int[] rows, int width)
    {
        var result = new double[rows.Length * width];
        for (int r = 0; r < rows.Length; r++)
            Array.Copy(data, (long)rows[r] * width, result, (long)r * width, width);
        return result;
    }
}
