using XFormers.Kernels;
using XFormers.Reference;
using XFormers.Tests.Kernels;

namespace XFormers.Tests;

/// <summary>
/// The decode kernel (<see cref="DecodeAttention"/>): few query rows a key/value head over long caches, fp16 and bf16 at
/// head dims 64, 128 and 256, padded and paged caches read in place, causal with offset, split into chunks or not,
/// against the fp64 reference run sequence by sequence on each sequence's own keys.
/// </summary>
[Collection(TensorCoreCollection.Name)]
public class DecodeKernelTests(TensorCoreFixture fixture)
{
    private XFormersContext Ctx => fixture.Context;

    [Theory]
    [InlineData(64, 4, 1, false, null)]
    [InlineData(128, 4, 2, true, null)]
    [InlineData(128, 8, 1, false, 3)]
    [InlineData(256, 2, 2, true, 2)]
    [InlineData(64, 1, 1, true, 5)]
    public void PaddedCacheMatchesTheReference(int k, int group, int hkv, bool causal, int? chunks)
    {
        // Ragged: an empty sequence, an empty cache, one key, more queries than keys (causal), lengths off the chunk grid.
        int longestQuery = 8 / group;
        int[] qSeqlen = { longestQuery, 0, 1, longestQuery, 1 }, kvSeqlen = { 300, 50, 0, 1, 517 };
        const int padding = 520;
        KvCacheMask mask = causal
            ? BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen)
            : BlockDiagonalPaddedKeysMask.FromSeqlens(qSeqlen, padding, kvSeqlen);
        var keyRows = kvSeqlen.Select((n, s) => Enumerable.Range(s * padding, n).ToArray()).ToArray();
        Check<Half>(mask, qSeqlen.Length * padding, keyRows, k, group * hkv, hkv, chunks);
    }

    [Theory]
    [InlineData(false, 16, null)]
    [InlineData(true, 16, 3)]
    [InlineData(false, 5, 2)]
    public void PagedCacheIsReadThroughItsBlockTable(bool causal, int pageSize, int? chunks)
    {
        // Pages in shuffled order, lengths that are not page multiples, unused table entries -1 (never read).
        const int k = 128, hkv = 2, hq = 8;
        int[] qSeqlen = { 1, 2, 1, 1 }, kvSeqlen = { 100, 0, 333, 7 };
        int perSequence = (kvSeqlen.Max() + pageSize - 1) / pageSize, pages = qSeqlen.Length * perSequence;
        var order = Enumerable.Range(0, pages).OrderBy(p => (p * 7919) % pages).ToArray();
        var table = new int[qSeqlen.Length, perSequence];
        int next = 0;
        for (int s = 0; s < qSeqlen.Length; s++)
            for (int p = 0; p < perSequence; p++)
                table[s, p] = p * pageSize < kvSeqlen[s] ? order[next++] : -1;
        KvCacheMask mask = causal
            ? PagedBlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(qSeqlen, kvSeqlen, table, pageSize)
            : PagedBlockDiagonalPaddedKeysMask.FromSeqlens(qSeqlen, kvSeqlen, table, pageSize);
        var keyRows = kvSeqlen.Select((n, s) => Enumerable.Range(0, n).Select(t => table[s, t / pageSize] * pageSize + t % pageSize).ToArray()).ToArray();
        Check<BFloat16>(mask, pages * pageSize, keyRows, k, hq, hkv, chunks);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, true)]
    public void DenseDecodingRunsTheKernel(int mq, bool causal)
    {
        const int batch = 3, mkv = 700, hq = 8, hkv = 2, k = 64;
        using var q = Tensor<BFloat16>.RandomNormal(Ctx, 1, 1f, batch, mq, hq, k);
        using var key = Tensor<BFloat16>.RandomNormal(Ctx, 2, 1f, batch, mkv, hkv, k);
        using var value = Tensor<BFloat16>.RandomNormal(Ctx, 3, 1f, batch, mkv, hkv, k);
        DecodeAttention.Takes(Ctx.Accelerator, k, mq, hq / hkv, q.View, key.View, value.View).ShouldBeTrue();
        AttentionBias? mask = causal ? new LowerTriangularFromBottomRightMask() : null;
        using var o = Fmha.MemoryEfficientAttention(q, key, value, mask);
        var problem = new ReferenceAttention.Problem(batch, mq, mkv, hq, hkv, k, 1.0 / Math.Sqrt(k), causal ? MaskKind.CausalFromBottomRight : MaskKind.None);
        var expected = ReferenceAttention.Forward(problem, q.ToDoubleArray(), key.ToDoubleArray(), value.ToDoubleArray());
        AttentionCheck.Error(o.ToDoubleArray(), expected.Output).ShouldBeLessThan(AttentionCheck.Tolerance(DType.BFloat16, k));
    }

    [Fact]
    public void ANanInAKeyOrValueReachesOnlyTheRowsThatSeeIt()
    {
        // Causal with offset, two queries: the last key is seen by the second query only. NaN in its value and key must not
        // reach the first query (no 0 · NaN); a NaN in an earlier key reaches both.
        const int k = 64, hq = 4, hkv = 1, mkv = 200;
        var mask = BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(new[] { 2 }, mkv, new[] { mkv });
        using var q = Tensor<Half>.RandomNormal(Ctx, 1, 1f, 1, 2, hq, k);
        using var keyRandom = Tensor<Half>.RandomNormal(Ctx, 2, 1f, 1, mkv, hkv, k);
        using var valueRandom = Tensor<Half>.RandomNormal(Ctx, 3, 1f, 1, mkv, hkv, k);
        var keyData = keyRandom.ToArray();
        var valueData = valueRandom.ToArray();
        keyData[(mkv - 1) * k + 5] = Half.NaN;
        valueData[(mkv - 1) * k + 7] = Half.NaN;
        using var key = Tensor<Half>.FromArray(Ctx, keyData, 1, mkv, hkv, k);
        using var value = Tensor<Half>.FromArray(Ctx, valueData, 1, mkv, hkv, k);
        using var result = Fmha.MemoryEfficientAttentionPartial(q, key, value, mask);
        var o = result.Output.ToFloatArray();
        var lse = result.Lse.ToFloatArray();
        for (int h = 0; h < hq; h++)
        {
            o.Skip(h * k).Take(k).ShouldAllBe(x => float.IsFinite(x));          // query 0
            float.IsFinite(lse[h * 2]).ShouldBeTrue();
            o.Skip((hq + h) * k).Take(k).ShouldAllBe(x => float.IsNaN(x));      // query 1
            float.IsNaN(lse[h * 2 + 1]).ShouldBeTrue();
        }

        keyData[3 * k] = Half.NaN;
        using var key2 = Tensor<Half>.FromArray(Ctx, keyData, 1, mkv, hkv, k);
        using var result2 = Fmha.MemoryEfficientAttentionPartial(q, key2, value, mask);
        result2.Output.ToFloatArray().ShouldAllBe(x => float.IsNaN(x));
    }

    [Fact]
    public void ChunksFillTheDeviceAndStayLong()
    {
        // H200 (132 SMs): B64 × 8 key heads fill two groups a multiprocessor unsplit; B8 × 8 over 32768 keys, 4 chunks (one wave).
        DecodeAttention.PlanChunks(groups: 512, longestKeys: 8192, multiprocessors: 132).ShouldBe(1);
        DecodeAttention.PlanChunks(groups: 64, longestKeys: 32768, multiprocessors: 132).ShouldBe(4);
        DecodeAttention.PlanChunks(groups: 8, longestKeys: 4096, multiprocessors: 132).ShouldBe(4);     // chunks of 1024 at least
        DecodeAttention.PlanChunks(groups: 4096, longestKeys: 32768, multiprocessors: 132).ShouldBe(1);
        DecodeAttention.PlanChunks(groups: 1, longestKeys: 1500, multiprocessors: 132).ShouldBe(1);    // under two chunks of 1024
        DecodeAttention.Chunking(8192, 5).ShouldBe((1664, 5));
        DecodeAttention.Chunking(100, 3).ShouldBe((64, 2));
        DecodeAttention.Chunking(0, 7).ShouldBe((1, 1));
    }

    [Fact]
    public void ShapesTheKernelDoesNotTakeGoElsewhere()
    {
        using var q = Tensor<Half>.Zeros(Ctx, 1, 3, 8, 64);
        DecodeAttention.Takes(Ctx.Accelerator, 80, 1, 4, q.View).ShouldBeFalse();              // head dim
        DecodeAttention.Takes(Ctx.Accelerator, 64, 3, 4, q.View).ShouldBeFalse();              // 12 rows a key head
        DecodeAttention.Takes(Ctx.Accelerator, 64, 2, 4, q.View).ShouldBeTrue();
        DecodeAttention.Takes(Ctx.Accelerator, 64, 1, 4, q.View.SubView(4)).ShouldBeFalse();   // not on a 16-byte boundary
        using var f = Tensor<float>.Zeros(Ctx, 1, 3, 8, 64);
        DecodeAttention.Takes(Ctx.Accelerator, 64, 1, 4, f.View).ShouldBeFalse();              // fp32 keeps the tiled kernels
        using var narrow = XFormersContext.CreateCpu();                                          // 4-lane warps
        DecodeAttention.Takes(narrow.Accelerator, 64, 1, 4, q.View).ShouldBeFalse();
    }

    /// <summary>
    /// Runs <paramref name="mask"/> through the partial forward (or <see cref="Fmha.KvCacheForward{T}"/> with
    /// <paramref name="chunks"/> forced) and checks O and LSE against the fp64 reference on each sequence's keys.
    /// </summary>
    private void Check<T>(KvCacheMask mask, int cacheRows, int[][] keyRows, int k, int hq, int hkv, int? chunks)
        where T : unmanaged
    {
        int mq = mask.TotalQ;
        using var q = Tensor<T>.RandomNormal(Ctx, 1, 1f, 1, mq, hq, k);
        using var key = Tensor<T>.RandomNormal(Ctx, 2, 1f, 1, cacheRows, hkv, k);
        using var value = Tensor<T>.RandomNormal(Ctx, 3, 1f, 1, cacheRows, hkv, k);
        DecodeAttention.Takes(Ctx.Accelerator, k, mask.QSeqlens.Max(), hq / hkv, q.View, key.View, value.View).ShouldBeTrue();
        using var output = Tensor<T>.Empty(Ctx, 1, mq, hq, k);
        using var lse = Tensor<float>.Empty(Ctx, 1, hq, mq);
        Fmha.KvCacheForward(q, key, value, mask, null, output, lse, chunks);

        double[] qd = q.ToDoubleArray(), kd = key.ToDoubleArray(), vd = value.ToDoubleArray();
        var expectedO = new double[qd.Length];
        var expectedLse = new double[hq * mq];
        for (int s = 0; s < mask.Count; s++)
        {
            int n = mask.QSeqStarts[s + 1] - mask.QSeqStarts[s], start = mask.QSeqStarts[s], m = keyRows[s].Length;
            var p = new ReferenceAttention.Problem(1, n, m, hq, hkv, k, 1.0 / Math.Sqrt(k), mask.IsCausalWithOffset ? MaskKind.CausalFromBottomRight : MaskKind.None);
            var f = ReferenceAttention.Forward(p, Rows(qd, Enumerable.Range(start, n).ToArray(), hq * k), Rows(kd, keyRows[s], hkv * k), Rows(vd, keyRows[s], hkv * k));
            Array.Copy(f.Output, 0, expectedO, start * hq * k, f.Output.Length);
            for (int h = 0; h < hq; h++)
                Array.Copy(f.Lse, h * n, expectedLse, h * mq + start, n);
        }
        AttentionCheck.Error(output.ToDoubleArray(), expectedO).ShouldBeLessThan(AttentionCheck.Tolerance(Tensor.DTypeOf(q), k));
        AttentionCheck.Error(lse.ToDoubleArray(), expectedLse).ShouldBeLessThan(1e-4);
    }

    private static double[] Rows(double[] data, int[] rows, int width)
    {
        var result = new double[rows.Length * width];
        for (int r = 0; r < rows.Length; r++)
            Array.Copy(data, (long)rows[r] * width, result, (long)r * width, width);
        return result;
    }
}
