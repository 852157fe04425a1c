using System.IO;
using System.Runtime.CompilerServices;

namespace XFormers.Tests.Generator;

/// <summary>
/// The generated source of representative declarations, compared with approved files in Snapshots/ (reviewed like
/// code). On a difference Shouldly writes a .received.cs beside the approved file (git-ignored) and fails; copy it
/// over the approved file once the change is reviewed. Each case must also compile with its generated files.
/// </summary>
public class GeneratorSnapshotTests
{
    /// <summary>One declaration per case, each in <c>namespace Snapshots</c> unless the case is about namespaces.</summary>
    private static readonly Dictionary<string, string> Variants = new()
    {
        ["CausalHalf64"] = """
            namespace Snapshots;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.Causal, HeadDim = 64, DType = DType.Float16)]
                public static partial AttentionKernel CausalHalf64();
            }
            """,
        ["TensorBiasGradientFloat32K32"] = """
            namespace Snapshots;

            public static partial class Kernels
            {
                [Attention(Bias = BiasKind.Tensor, BiasGradient = true, HeadDim = 32, DType = DType.Float32)]
                public static partial AttentionKernel TensorBiasGradientFloat32K32();
            }
            """,
        ["BlockDiagonalCausalAlibiBFloat16K128"] = """
            namespace Snapshots;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.BlockDiagonalCausal, Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.BFloat16)]
                public static partial AttentionKernel BlockDiagonalCausalAlibiBFloat16K128();
            }
            """,
        ["GroupedQueryHeads8KvHeads2"] = """
            namespace Snapshots;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.CausalFromBottomRight, HeadDim = 64, Heads = 8, KvHeads = 2)]
                public static partial AttentionKernel GroupedQueryHeads8KvHeads2();
            }
            """,
        ["ForwardOnlyBlockDiagonalTiles"] = """
            namespace Snapshots;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.BlockDiagonal, HeadDim = 32, BlockM = 128, BlockN = 16, Backward = false)]
                internal static partial AttentionKernel ForwardOnlyBlockDiagonalTiles();
            }
            """,
        // K = 256 on tensor cores: 32-key forward tiles, O in two slices of 128 columns, dK/dV in four of 64, dQ in three of 96 (the last 64 wide).
        ["CausalBFloat16K256"] = """
            namespace Snapshots;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.Causal, HeadDim = 256, DType = DType.BFloat16)]
                public static partial AttentionKernel CausalBFloat16K256();
            }
            """,
        // Dropout: the Philox mask after the forward's row sum, regenerated in the dK/dV and dQ passes (SIMT and mma.sync).
        ["CausalDropoutHalf64"] = """
            namespace Snapshots;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.Causal, HeadDim = 64, DType = DType.Float16, Dropout = true)]
                public static partial AttentionKernel CausalDropoutHalf64();
            }
            """,
        // A nested struct in a block namespace; K = 256 shows the halved BackwardBlockM (32 → 16) and BlockN = 16.
        ["NestedInNamespaceK256"] = """
            namespace MyApp.Attention
            {
                public partial class Outer
                {
                    internal partial struct Inner
                    {
                        [Attention(HeadDim = 256, DType = DType.Float32)]
                        internal static partial AttentionKernel Wide();
                    }
                }
            }
            """,
    };

    public static TheoryData<string> VariantCases => new(Variants.Keys);

    [Theory]
    [MemberData(nameof(VariantCases))]
    public void Variant(string name)
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + Variants[name]).ShouldNotHaveThrown();

        run.OutputErrors.ShouldBeEmpty();
        var variantFile = run.Sources.Keys.Single(hint => !hint.Contains(".XFormersRegistry."));
        // CausalHalf64's portable kernels are pinned whole; every other case's as its difference from that file, so a
        // change to Variant.liquid shows in one reviewed file and each case shows what it changes. The forward-only case
        // differs in more lines than it has, so it stays whole.
        if (name is "CausalHalf64" or "ForwardOnlyBlockDiagonalTiles")
            ShouldMatchSnapshot(run.Sources[variantFile], name);
        else
            ShouldMatchDifference(run.Sources[variantFile], "Variant.CausalHalf64", name);
        // The grouped-query case's tensor-core file is CausalHalf64's but for a few lines: pinned as that difference below.
        // Dropout adds its blocks to CausalHalf64's tensor-core file: pinned as its difference from it.
        if (name == "CausalDropoutHalf64")
            ShouldMatchDifference(run.TensorCoreSources.Values.Single(), "Variant.CausalHalf64.TensorCore", name + ".TensorCore");
        else if (name != "GroupedQueryHeads8KvHeads2")
        {
            foreach (var companion in run.TensorCoreSources)
                ShouldMatchSnapshot(companion.Value, name + ".TensorCore");
        }
        // One sm_90a module is pinned whole (the causal fp16 K64 variant: both of its plans); the others' structure is
        // checked by HopperModuleTests, so a change to the emitter shows in one reviewed file, not in every snapshot.
        if (name == "CausalHalf64")
            ShouldMatchSnapshot(run.HopperSources.Values.Single(), name + ".Hopper");
    }

    /// <summary>
    /// The tensor-core kernels of a fixed grouping with a bottom-right causal mask are those of <c>CausalHalf64</c> (same
    /// head dim, dtype and tiles) with the group size as a constant and the mask shifted by Mkv − Mq; every other byte
    /// is the approved CausalHalf64 file's, so this pins the whole file without a second copy of it.
    /// </summary>
    [Fact]
    public void GroupedQueryTensorCoreIsCausalHalf64WithAConstantGroupAndABottomRightMask()
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + Variants["GroupedQueryHeads8KvHeads2"]).ShouldNotHaveThrown();

        string causal = File.ReadAllText(ApprovedFile("Variant.CausalHalf64.TensorCore")).ReplaceLineEndings("\n");
        string expected = causal
            .ReplaceExactly("CausalHalf64", "GroupedQueryHeads8KvHeads2", 2)
            .ReplaceExactly("Mask = Causal, ", "Mask = CausalFromBottomRight, ", 1)
            .ReplaceExactly("Heads = any, KvHeads = any", "Heads = 8, KvHeads = 2", 1)
            .ReplaceExactly("return firstKey + keys - 1 > firstRow;", "return firstKey + keys - 1 > firstRow + a.Mkv - a.Mq;", 1)
            .ReplaceExactly("int hk = h / a.GroupSize;", "int hk = h / 4;", 2)
            .ReplaceExactly("int groupSize = a.GroupSize;", "int groupSize = 4;", 1);
        run.TensorCoreSources.Values.Single().ReplaceLineEndings("\n").ShouldBe(expected);
    }

    [Fact]
    public void SnapshotDiffListsEachChangedRunOfLinesUnderItsPosition()
    {
        SnapshotDiff.Of("a\nb\nc\nd", "a\nB\nc\nd\ne").ShouldBe("@@ -2,1 +2,1 @@\n-b\n+B\n@@ -5,0 +5,1 @@\n+e\n");
        SnapshotDiff.Of("a\nb", "a\nb").ShouldBeEmpty();
        SnapshotDiff.Of("x\na\nb", "a\nb").ShouldBe("@@ -1,1 +1,0 @@\n-x\n");
    }

    private static string ApprovedFile(string discriminator) =>
        Path.Combine(ConsumerProjectTests.RepositoryRoot(), "tests", "XFormers.Tests", "Generator", "Snapshots", $"{nameof(GeneratorSnapshotTests)}.{discriminator}.approved.cs");

    /// <summary>The dispatch table of a type declared in two files, nested in a file-scoped namespace: every variant, in name order.</summary>
    [Fact]
    public void Registry()
    {
        var run = GeneratorHarness.Run(
            GeneratorHarness.Usings + """
            namespace MyApp;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.Causal, HeadDim = 64)]
                public static partial AttentionKernel Causal64();

                [Attention(Bias = BiasKind.Alibi, HeadDim = 128, DType = DType.BFloat16)]
                internal static partial AttentionKernel Alibi128();
            }
            """,
            GeneratorHarness.Usings + """
            namespace MyApp;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.BlockDiagonal, HeadDim = 32, DType = DType.Float32, Backward = false)]
                public static partial AttentionKernel Packed32();
            }
            """).ShouldNotHaveThrown();

        run.OutputErrors.ShouldBeEmpty();
        run.Sources.Keys.OrderBy(hint => hint, StringComparer.Ordinal).ShouldBe(new[]
        {
            "MyApp.Kernels.Alibi128.g.cs",
            "MyApp.Kernels.Causal64.g.cs",
            "MyApp.Kernels.Packed32.g.cs",
            "MyApp.Kernels.XFormersRegistry.g.cs",
        });
        ShouldMatchSnapshot(run.Sources["MyApp.Kernels.XFormersRegistry.g.cs"], "MyAppKernels");
    }

    /// <summary>
    /// <paramref name="generated"/> as its line difference from the approved file <paramref name="baseline"/>
    /// (<see cref="SnapshotDiff"/>), compared with <c>…{discriminator}.approved.diff</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ShouldMatchDifference(string generated, string baseline, string discriminator) =>
        SnapshotDiff.Of(File.ReadAllText(ApprovedFile(baseline)), generated).ShouldMatchApproved(c => c
            .UseCallerLocation()
            .SubFolder("Snapshots")
            .WithDiscriminator(discriminator)
            .WithFileExtension("diff")
            .NoDiff());

    /// <summary>Names the approved file after the calling test and <paramref name="discriminator"/>; never opens a diff tool.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ShouldMatchSnapshot(string generated, string discriminator) =>
        generated.ShouldMatchApproved(c => c
            .UseCallerLocation()
            .SubFolder("Snapshots")
            .WithDiscriminator(discriminator)
            .WithFileExtension("cs")
            .NoDiff());
}

/// <summary>
/// A line difference for snapshots: the hunks where <c>changed</c> departs from <c>baseline</c> (a longest common
/// subsequence of lines), each headed <c>@@ -line,count +line,count @@</c> and listing the removed lines (<c>-</c>) and
/// the added ones (<c>+</c>), with no context lines. Line endings are normalized to \n first.
/// </summary>
internal static class SnapshotDiff
{
    public static string Of(string baseline, string changed)
    {
        string[] a = baseline.ReplaceLineEndings("\n").Split('\n'), b = changed.ReplaceLineEndings("\n").Split('\n');
        // common[i, j]: the longest common subsequence of a[i..] and b[j..].
        var common = new int[a.Length + 1, b.Length + 1];
        for (int i = a.Length - 1; i >= 0; i--)
        {
            for (int j = b.Length - 1; j >= 0; j--)
                common[i, j] = a[i] == b[j] ? common[i + 1, j + 1] + 1 : Math.Max(common[i + 1, j], common[i, j + 1]);
        }
        var text = new System.Text.StringBuilder();
        int x = 0, y = 0;
        while (x < a.Length || y < b.Length)
        {
            if (x < a.Length && y < b.Length && a[x] == b[y])
            {
                x++;
                y++;
                continue;
            }
            int startA = x, startB = y;
            var removed = new List<string>();
            var added = new List<string>();
            while ((x < a.Length || y < b.Length) && !(x < a.Length && y < b.Length && a[x] == b[y]))
            {
                if (y >= b.Length || (x < a.Length && common[x + 1, y] >= common[x, y + 1]))
                    removed.Add(a[x++]);
                else
                    added.Add(b[y++]);
            }
            text.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"@@ -{startA + 1},{removed.Count} +{startB + 1},{added.Count} @@\n");
            foreach (string line in removed)
                text.Append('-').Append(line).Append('\n');
            foreach (string line in added)
                text.Append('+').Append(line).Append('\n');
        }
        return text.ToString();
    }
}

internal static class SnapshotText
{
    /// <summary><paramref name="oldValue"/> replaced, after checking it occurs exactly <paramref name="count"/> times.</summary>
    public static string ReplaceExactly(this string text, string oldValue, string newValue, int count)
    {
        int found = 0;
        for (int at = text.IndexOf(oldValue, StringComparison.Ordinal); at >= 0; at = text.IndexOf(oldValue, at + oldValue.Length, StringComparison.Ordinal))
            found++;
        found.ShouldBe(count, $"occurrences of '{oldValue}'");
        return text.Replace(oldValue, newValue, StringComparison.Ordinal);
    }
}

/// <summary>Which declarations get tensor-core kernels beside their portable ones: 16-bit, every head dim.</summary>
public class TensorCoreEmissionTests
{
    [Theory]
    [InlineData("DType.Float16", 128, true)]
    [InlineData("DType.BFloat16", 16, true)]
    [InlineData("DType.Float16", 144, true)]
    [InlineData("DType.BFloat16", 160, true)]
    [InlineData("DType.Float16", 256, true)]
    [InlineData("DType.Float16", 40, true)]
    [InlineData("DType.BFloat16", 248, true)]
    [InlineData("DType.Float32", 64, false)]
    public void ForEverySixteenBitHeadDim(string dtype, int headDim, bool expected)
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + $$"""
            namespace Emission;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.Causal, HeadDim = {{headDim}}, DType = {{dtype}})]
                public static partial AttentionKernel Variant();
            }
            """).ShouldNotHaveThrown();

        run.OutputErrors.ShouldBeEmpty();
        run.TensorCoreSources.Count.ShouldBe(expected ? 1 : 0);
    }
}
