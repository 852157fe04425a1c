using ILGPU;
using ILGPU.Runtime;
using XFormers.Kernels;

namespace XFormers.Tests.Mods;

/// <summary>The block mask's lists (what the sm_90a kernels walk) from its tile classes, on the CPU accelerator.</summary>
[Collection(CpuCollection.Name)]
public class BlockMaskTests(CpuContextFixture fixture)
{
    /// <summary>A classifier for a causal mask, written here independently of the generated one.</summary>
    private static void CausalClasses(AttentionArgs<float> a)
    {
        int colTile = Grid.IdxX * 32 + Group.IdxX, rowTile = Grid.IdxY;
        if (colTile >= a.BlocksCols)
            return;
        int firstRow = rowTile * a.BlockRows, endRow = System.Math.Min(firstRow + a.BlockRows, a.Mq);
        int firstKey = colTile * a.BlockCols, endKey = System.Math.Min(firstKey + a.BlockCols, a.Mkv);
        bool any = false, all = true;
        for (int i = firstRow; i < endRow; i++)
            for (int j = firstKey; j < endKey; j++)
            {
                any |= j <= i;
                all &= j <= i;
            }
        a.Blocks[(long)rowTile * a.BlocksCols + colTile] = (byte)(!any ? 0 : all ? 2 : 1);
    }

    [Fact]
    public void ListsHoldTheVisibleTilesInOrderWithTheirFullBits()
    {
        var accelerator = fixture.Context.Accelerator;
        var variant = new AttentionVariant("Test.Causal", Dsl.MaskKind.None, Dsl.BiasKind.None, false, 32, 0, 0, 0, 64, 64, 64, Dsl.DType.Float32, true, "");
        var args = new AttentionArgs<float> { Batch = 1, Mq = 300, Mkv = 300, Hq = 2, Hkv = 2, GroupSize = 1 };
        var classifier = accelerator.LoadStreamKernel<AttentionArgs<float>>(CausalClasses);
        BlockMasks.Attach(accelerator, variant, null, classifier, ref args, 128, 128, list: true);
        accelerator.Synchronize();
        args.BlocksCols.ShouldBe(3);
        args.BlocksStrideB.ShouldBe(0);
        args.BlocksStrideH.ShouldBe(0);
        var list = new int[args.BlockList.Length];
        args.BlockList.CopyToCPU(list);
        // Rows of 3 + 1 ints, the count then the entries (slots past the count are not written): row 0 sees tile 0
        // (partial); row 1 tile 0 (full), 1 (partial); row 2 tiles 0, 1 (full), 2.
        list.Take(2).ShouldBe(new[] { 1, 0 });
        list.Skip(4).Take(3).ShouldBe(new[] { 2, 1, 2 });
        list.Skip(8).Take(4).ShouldBe(new[] { 3, 1, 3, 4 });
        var classes = new byte[args.Blocks.Length];
        args.Blocks.CopyToCPU(classes);
        classes.ShouldBe(new byte[] { 1, 0, 0, 2, 1, 0, 2, 2, 1 });
    }

    /// <summary>A classifier whose mask reads the head: query i of head h sees keys j ≤ i + 64 · h (written here independently).</summary>
    private static void ShiftedCausalClasses(AttentionArgs<float> a)
    {
        int colTile = Grid.IdxX * 32 + Group.IdxX, rowTile = Grid.IdxY, h = Grid.IdxZ;
        if (colTile >= a.BlocksCols)
            return;
        a.Blocks[(long)h * a.BlocksStrideH + (long)rowTile * a.BlocksCols + colTile] = ShiftedCausalClass(a.BlockRows, a.BlockCols, a.Mq, a.Mkv, h, rowTile, colTile);
    }

    private static byte ShiftedCausalClass(int rows, int cols, int mq, int mkv, int h, int rowTile, int colTile)
    {
        int firstRow = rowTile * rows, endRow = System.Math.Min(firstRow + rows, mq);
        int firstKey = colTile * cols, endKey = System.Math.Min(firstKey + cols, mkv);
        bool any = false, all = true;
        for (int i = firstRow; i < endRow; i++)
            for (int j = firstKey; j < endKey; j++)
            {
                any |= j <= i + 64 * h;
                all &= j <= i + 64 * h;
            }
        return (byte)(!any ? 0 : all ? 2 : 1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ColumnListsHoldEachKeyTilesQueryHeadAndTilePairsInOrder(bool readsHead)
    {
        // The sm_90a dK/dV pass's lists: a row per (key/value head, key tile), listing (g · tilesM + query tile) · 2 + full,
        // g-major, for the group's query heads g. Hq 4 over Hkv 2; 64-query by 128-key tiles of 300 × 300: 5 × 3 tiles.
        var accelerator = fixture.Context.Accelerator;
        var variant = new AttentionVariant("Test.Shifted" + readsHead, Dsl.MaskKind.None, Dsl.BiasKind.None, false, 32, 0, 0, 0, 64, 64, 64, Dsl.DType.Float32, true, "")
        {
            MaskReadsHead = readsHead,
        };
        var args = new AttentionArgs<float> { Batch = 1, Mq = 300, Mkv = 300, Hq = 4, Hkv = 2, GroupSize = 2 };
        var classifier = readsHead
            ? accelerator.LoadStreamKernel<AttentionArgs<float>>(ShiftedCausalClasses)
            : accelerator.LoadStreamKernel<AttentionArgs<float>>(CausalClasses);
        var layout = BlockMasks.Columns(accelerator, variant, null, classifier, args, 64, 128);
        accelerator.Synchronize();
        const int tilesM = 5, tilesN = 3, group = 2;
        layout.Cols.ShouldBe(group * tilesM);
        layout.RowsB.ShouldBe(0);
        layout.RowsH.ShouldBe(readsHead ? tilesN : 0);
        var list = new int[layout.List.Length];
        layout.List.CopyToCPU(list);
        list.Length.ShouldBe((readsHead ? 2 : 1) * tilesN * (group * tilesM + 1));
        for (int hk = 0; hk < (readsHead ? 2 : 1); hk++)
        {
            for (int col = 0; col < tilesN; col++)
            {
                var expected = new List<int>();
                for (int g = 0; g < group; g++)
                    for (int r = 0; r < tilesM; r++)
                    {
                        byte c = ShiftedCausalClass(64, 128, 300, 300, readsHead ? hk * group + g : 0, r, col);
                        if (c != 0)
                            expected.Add(2 * (g * tilesM + r) + (c == 2 ? 1 : 0));
                    }
                int row = hk * layout.RowsH + col;
                int start = row * (layout.Cols + 1);
                list[start].ShouldBe(expected.Count, $"kv head {hk}, key tile {col}");
                list.Skip(start + 1).Take(expected.Count).ShouldBe(expected, $"kv head {hk}, key tile {col}");
            }
        }
        // Without the head, key tile 2 (keys 256–299) is seen only by query tile 4 (rows 256–299, partially), of both heads.
        if (!readsHead)
            list.Skip(2 * (group * tilesM + 1)).Take(3).ShouldBe(new[] { 2, 2 * 4, 2 * 9 });
    }
}
