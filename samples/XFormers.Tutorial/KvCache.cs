using System;
using System.Linq;
using Spectre.Console;
using Half = ILGPU.Half;

namespace XFormers.Tutorial;

public sealed partial class Tutorial
{
    // 8. Decoding with a KV cache: padded and paged caches, one new token per sequence, against attention recomputed
    //    over each sequence's keys alone.
    private void KvCacheDecoding()
    {
        Heading(8, "Decoding with a KV cache");
        int[] cached = OnCpu ? new[] { 37, 120, 8, 200 } : new[] { 370, 1200, 80, 2000 };
        int padding = OnCpu ? 256 : 2048, pageSize = 16, hq = 8, hkv = 2, k = 64, count = cached.Length;
        if (OnCpu)
            Reduced($"caches of {string.Join("/", cached)} tokens padded to {padding} (GPU: ten times longer)");

        // The cache after a prefill: sequence s holds its keys in rows [s · padding, s · padding + cached[s] + 1); the +1
        // is this step's token, written into the cache before attention, as a decoder does.
        var kvSeqlen = cached.Select(n => n + 1).ToArray();
        using var q = Tensor<Half>.RandomNormal(context, 16, 1f, 1, count, hq, k);
        using var keyCache = Tensor<Half>.RandomNormal(context, 17, 1f, 1, count * padding, hkv, k);
        using var valueCache = Tensor<Half>.RandomNormal(context, 18, 1f, 1, count * padding, hkv, k);
        var mask = BlockDiagonalCausalWithOffsetPaddedKeysMask.FromSeqlens(Enumerable.Repeat(1, count).ToArray(), padding, kvSeqlen);
        var probe = BlockDiagonalMask.FromSeqlens(new[] { count }, new[] { count * padding });
        Compile(backward: false, Fmha.SelectKernel(q, keyCache, valueCache, probe), Fmha.SelectKernel(q, keyCache, valueCache, probe.MakeCausal()));
        using var output = Fmha.MemoryEfficientAttention(q, keyCache, valueCache, mask);
        console.WriteLine($"{count} sequences, one new token each: q {q.ShapeString}, cache {keyCache.ShapeString} ({hq} query heads over {hkv} KV heads) → {output.ShapeString}");

        // Each sequence alone: its query over exactly its filled keys.
        double worst = 0;
        var padded = output.ToDoubleArray();
        for (int s = 0; s < count; s++)
        {
            using var alone = Fmha.MemoryEfficientAttention(q.Narrow(1, s, 1), keyCache.Narrow(1, s * padding, kvSeqlen[s]), valueCache.Narrow(1, s * padding, kvSeqlen[s]));
            worst = Math.Max(worst, MaxAbsDiff(padded.Skip(s * hq * k).Take(hq * k).ToArray(), alone.ToDoubleArray()));
        }
        console.WriteLine($"padded cache vs each sequence recomputed alone: max abs diff {worst:E2}");

        // The same cache in pages of 16, shuffled as an allocator would leave them; the block table names each sequence's pages.
        int pagesPerSequence = padding / pageSize, pages = count * pagesPerSequence;
        var shuffled = Enumerable.Range(0, pages).OrderBy(p => (p * 7919) % pages).ToArray();
        var table = new int[count, pagesPerSequence];
        var keys = keyCache.ToArray();
        var values = valueCache.ToArray();
        var pagedKeys = new Half[keys.Length];
        var pagedValues = new Half[values.Length];
        int rowWidth = hkv * k;
        for (int s = 0; s < count; s++)
        {
            for (int p = 0; p < pagesPerSequence; p++)
            {
                int page = shuffled[s * pagesPerSequence + p];
                table[s, p] = page;
                Array.Copy(keys, (s * padding + p * pageSize) * rowWidth, pagedKeys, page * pageSize * rowWidth, pageSize * rowWidth);
                Array.Copy(values, (s * padding + p * pageSize) * rowWidth, pagedValues, page * pageSize * rowWidth, pageSize * rowWidth);
            }
        }
        using var pagedKeyCache = Tensor<Half>.FromArray(context, pagedKeys, 1, pages * pageSize, hkv, k);
        using var pagedValueCache = Tensor<Half>.FromArray(context, pagedValues, 1, pages * pageSize, hkv, k);
        using var pagedOutput = Fmha.MemoryEfficientAttention(q, pagedKeyCache, pagedValueCache, mask.MakePaged(table, pageSize));
        console.WriteLine($"paged cache ({pages} pages of {pageSize}, shuffled) vs padded: max abs diff {MaxAbsDiff(pagedOutput.ToDoubleArray(), padded):E2}");
        console.WriteLine("few queries over long caches split their keys across the device and merge the parts (docs/API.md, split-KV)");
    }
}
