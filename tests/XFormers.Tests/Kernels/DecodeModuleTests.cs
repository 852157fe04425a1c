using System.Text.RegularExpressions;
using XFormers.Hopper;

namespace XFormers.Tests.Kernels;

/// <summary>
/// The decode module the runtime writes as PTX (Hopper/DecodeEmitter.cs), checked without a GPU: one module pinned whole,
/// and for every configuration the things ptxas would reject or that would run wrong silently (an undeclared register, a
/// branch to no label, a shared-memory request past the device's, instruction counts that follow from the tile sizes).
/// The numbers are checked on the H200 by the decode conformance (docs/PERF.md).
/// </summary>
public class DecodeModuleTests
{
    public static TheoryData<bool, int, bool> AllTraits()
    {
        var data = new TheoryData<bool, int, bool>();
        foreach (var traits in HopperDecode.AllTraits())
            data.Add(traits.BFloat16, traits.HeadDim, traits.Paged);
        return data;
    }

    [Fact]
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public void TheBFloat16HeadDim128PaddedModuleMatchesItsApprovedText()
    {
        string ptx = HopperDecode.Module(new DecodeTraits(true, 128, false)).Ptx;
        ptx.ShouldMatchApproved(c => c
            .SubFolder("Snapshots")
            .WithFileExtension("ptx")
            .NoDiff());
    }

    [Theory]
    [MemberData(nameof(AllTraits))]
    public void EveryRegisterIsDeclaredAndEveryBranchHasItsLabel(bool bfloat16, int headDim, bool paged)
    {
        var traits = new DecodeTraits(bfloat16, headDim, paged);
        string ptx = HopperDecode.Module(traits).Ptx;

        ptx.ShouldContain(".target sm_80");
        ptx.ShouldContain(".visible .entry " + traits.EntryPoint + "(");
        ptx.Count(ch => ch == '{').ShouldBe(ptx.Count(ch => ch == '}'));
        var declared = new HashSet<string>();
        foreach (Match m in Regex.Matches(ptx, @"\.reg \.\w+ %(\w+?)(<(\d+)>)?;"))
        {
            if (m.Groups[3].Success)
            {
                for (int i = 0; i < int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture); i++)
                    declared.Add(m.Groups[1].Value + i);
            }
            else
            {
                declared.Add(m.Groups[1].Value);
            }
        }
        string code = string.Join("\n", ptx.Split('\n').Where(line => !line.TrimStart().StartsWith("//", StringComparison.Ordinal) && !line.Contains(".reg ", StringComparison.Ordinal)));
        var used = Regex.Matches(code, @"%(\w+)").Select(m => m.Groups[1].Value)
            .Where(name => name is not ("tid" or "ctaid" or "ntid" or "nctaid"))
            .ToHashSet();
        used.Except(declared).ShouldBeEmpty();
        var labels = Regex.Matches(ptx, @"^(\$L_\w+):", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        labels.Count.ShouldBe(labels.Distinct().Count());
        Regex.Matches(ptx, @"bra(\.uni)? (\$L_\w+);").Select(m => m.Groups[2].Value).Except(labels).ShouldBeEmpty();
    }

    [Theory]
    [MemberData(nameof(AllTraits))]
    public void InstructionCountsFollowFromTheTiles(bool bfloat16, int headDim, bool paged)
    {
        var traits = new DecodeTraits(bfloat16, headDim, paged);
        string ptx = HopperDecode.Module(traits).Ptx;
        int steps = headDim / 16;

        // A tile: two mma a k-step of Q·Kᵀ and two a 16-column pair of P·V, one ldmatrix.x4 each.
        Count(ptx, "mma.sync.aligned.m16n8k16.row.col.f32." + traits.Element + "." + traits.Element + ".f32").ShouldBe(4 * steps);
        Count(ptx, "ldmatrix.sync.aligned.m8n8.x4.shared.b16").ShouldBe(steps);
        Count(ptx, "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16").ShouldBe(steps);
        // Issued in the prologue (Stages − 1 tiles) and once in the loop: a key and a value copy a lane per 16 bytes of a row.
        Count(ptx, "cp.async.cg.shared.global.L2::128B").ShouldBe(traits.Stages * 2 * (traits.ChunksPerRow / 2));
        Count(ptx, "cp.async.commit_group").ShouldBe(traits.Stages);
        ptx.ShouldContain("cp.async.wait_group " + (traits.Stages - 1) + ";");
        Count(ptx, "ld.global.nc.u32").ShouldBe(paged ? traits.Stages * (traits.ChunksPerRow / 2) : 0);
        ptx.ShouldNotContain("max.f32");
    }

    [Theory]
    [MemberData(nameof(AllTraits))]
    public void SharedMemoryFitsAnH200CtaAndHoldsTheRingAndTheMerge(bool bfloat16, int headDim, bool paged)
    {
        var traits = new DecodeTraits(bfloat16, headDim, paged);

        traits.Stages.ShouldBeGreaterThanOrEqualTo(2);
        traits.SharedBytes.ShouldBeLessThanOrEqualTo(227 * 1024);
        traits.SharedBytes.ShouldBe(Math.Max(DecodeTraits.Warps * traits.Stages * 2 * DecodeTraits.TileKeys * headDim * 2, DecodeTraits.Warps * 16 * (headDim + 2) * 4));
        HopperDecode.Module(traits).Ptx.ShouldContain(traits.SharedBytes + " bytes of dynamic shared memory");
    }

    [Theory]
    [InlineData(128, 4, 1, true, true)]
    [InlineData(128, 16, 1, true, true)]
    [InlineData(64, 8, 4, false, true)]
    // Causal with several queries: rows see different keys, which the module does not mask.
    [InlineData(128, 8, 2, true, false)]
    [InlineData(128, 17, 1, false, false)]
    [InlineData(96, 4, 1, false, false)]
    public void TheModuleTakesOnlyShapesWhereEveryRowSeesTheSameKeys(int headDim, int rows, int longestQuery, bool causal, bool expected)
    {
        HopperDecode.ShapeFits(headDim, rows, longestQuery, causal).ShouldBe(expected);
        using var context = XFormersContext.CreateCpu();
        // Never on the CPU: the driver path is for compute capability 9.0.
        HopperDecode.Takes(context.Accelerator, headDim, rows, longestQuery, causal).ShouldBeFalse();
    }

    [Fact]
    public void AHeadDimTheModuleIsNotWrittenForIsRefused() =>
        Should.Throw<ArgumentOutOfRangeException>(() => DecodeEmitter.Emit(new DecodeTraits(true, 96, false)));

    private static int Count(string text, string what) => Regex.Matches(text, Regex.Escape(what) + @"[ ;]").Count;
}
