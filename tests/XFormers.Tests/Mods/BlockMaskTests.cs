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
}
