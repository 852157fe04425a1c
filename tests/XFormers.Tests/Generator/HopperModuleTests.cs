using System.Globalization;
using System.Text.RegularExpressions;

namespace XFormers.Tests.Generator;

/// <summary>
/// The sm_90a forward modules as the generator writes them, checked without a GPU: which declarations get one, the PTX's
/// header, entry point and parameters, the instructions the design rests on, and the shared-memory byte count against the
/// layout's formula (Q, the K and V rings, the mbarriers). The device harness runs and times them (docs/PERF.md).
/// </summary>
public class HopperModuleTests
{
    private static GeneratorRun Generate(string dtype, int headDim, string mask = "MaskKind.Causal", string bias = "BiasKind.None") =>
        GeneratorHarness.Run(GeneratorHarness.Usings + $$"""
            namespace Hopper;

            public static partial class Kernels
            {
                [Attention(Mask = {{mask}}, Bias = {{bias}}, HeadDim = {{headDim}}, DType = {{dtype}})]
                public static partial AttentionKernel Variant();
            }
            """).ShouldNotHaveThrown();

    [Theory]
    [InlineData("DType.Float16", 64, true)]
    [InlineData("DType.BFloat16", 128, true)]
    [InlineData("DType.Float16", 192, true)]
    [InlineData("DType.BFloat16", 256, true)]
    [InlineData("DType.Float16", 32, false)]
    [InlineData("DType.Float16", 96, false)]
    [InlineData("DType.Float32", 64, false)]
    public void OnlyForSixteenBitHeadDimsThatAreMultiplesOf64UpTo256(string dtype, int headDim, bool expected)
    {
        var run = Generate(dtype, headDim);
        run.OutputErrors.ShouldBeEmpty();
        run.HopperSources.Count.ShouldBe(expected ? 1 : 0);
        run.Sources.Values.Single(s => s.Contains(" Variant() =>", StringComparison.Ordinal))
            .Contains("hopperForward: HopperForward", StringComparison.Ordinal).ShouldBe(expected);
    }

    public static TheoryData<string, int, string, string> Declarations => new()
    {
        { "DType.Float16", 64, "MaskKind.Causal", "BiasKind.None" },
        { "DType.BFloat16", 128, "MaskKind.BlockDiagonalCausal", "BiasKind.Alibi" },
        { "DType.Float16", 128, "MaskKind.CausalFromBottomRight", "BiasKind.Tensor" },
        { "DType.BFloat16", 64, "MaskKind.BlockDiagonal", "BiasKind.Tensor" },
        { "DType.Float16", 256, "MaskKind.None", "BiasKind.None" },
    };

    [Theory]
    [MemberData(nameof(Declarations))]
    public void ModulesHaveTheEntryPointParametersAndSharedMemoryOfTheirPlan(string dtype, int headDim, string mask, string bias)
    {
        var run = Generate(dtype, headDim, mask, bias);
        run.OutputErrors.ShouldBeEmpty();
        var source = run.HopperSources.Values.Single();
        var modules = Modules(source);
        modules.Count.ShouldBe(headDim == 64 && bias != "BiasKind.Tensor" ? 2 : 1, "HeadDim 64 carries a 128-row module for small grids beside the 192-row one, unless a tensor bias keeps it at 128 rows");
        foreach (var m in modules)
        {
            var module = m.Ptx;
            module.ShouldContain(".version 8.0\n.target sm_90a\n.address_size 64\n");
            module.All(c => c < 128).ShouldBeTrue("ptxas takes ASCII only");
            Regex.Matches(module, @"\.visible \.entry (\w+)\(").Select(x => x.Groups[1].Value).ShouldBe(new[] { m.EntryPoint });
            Regex.Matches(module, @"^    \.param [^\n]*?(\w+)(\[128\])?[,)]?$", RegexOptions.Multiline).Select(x => x.Groups[1].Value).ShouldBe(new[]
            {
                "tmap_q", "tmap_k", "tmap_v", "o", "lse", "bias", "bias_stride_b", "bias_stride_h", "bias_stride_m", "bias_stride_n",
                "alibi_slopes", "q_segment", "q_start", "kv_start", "mq", "mkv", "hq", "group_size", "scale", "scale_log2",
            });
            // The instructions below are counted in the fast pass; the later passes (docs/RELIABILITY.md) repeat them.
            var ptx = FastPass(module);
            ptx.ShouldContain($".maxntid {m.Threads}, 1, 1\n.minnctapersm 1\n");

            // The layout's formula, from the plan's numbers: Q, Stages K tiles and Stages V tiles, 1 + 4·Stages mbarriers.
            m.HeadDim.ShouldBe(headDim);
            int stages = int.Parse(Regex.Match(module, @"(\d+) K/V stages").Groups[1].Value, CultureInfo.InvariantCulture);
            int barrierOffset = m.BlockM * headDim * 2 + 2 * stages * m.BlockN * headDim * 2;
            m.SharedBytes.ShouldBe(barrierOffset + (1 + 4 * stages) * 8);
            m.SharedBytes.ShouldBeLessThanOrEqualTo(227 * 1024);
            stages.ShouldBeInRange(2, 4);
            var offsets = Regex.Matches(ptx, @"%smem, (\d+);").Select(x => int.Parse(x.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
            offsets.ShouldContain(barrierOffset, "the first mbarrier sits right after the K and V rings");
            (offsets.Max() + 8).ShouldBe(m.SharedBytes, "the last mbarrier ends the shared memory the kernel asks for");

            // What the design rests on: TMA into shared memory, the mbarrier ring, wgmma from shared memory and from
            // registers, the register split between producer and consumers.
            ptx.ShouldContain("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes");
            ptx.ShouldContain("mbarrier.try_wait.parity.shared::cta.b64");
            ptx.ShouldContain($"wgmma.mma_async.sync.aligned.m64n{m.BlockN}k16.f32.");
            ptx.ShouldContain($"wgmma.mma_async.sync.aligned.m64n{headDim}k16.f32.");
            ptx.ShouldContain("setmaxnreg.dec.sync.aligned.u32 24;");
            ptx.ShouldContain("setmaxnreg.inc.sync.aligned.u32");
            int consumers = m.Threads / 128 - 1;
            (m.BlockM).ShouldBe(64 * consumers);
            Regex.Matches(ptx, @"wgmma\.mma_async").Count.ShouldBe(headDim / 16 + m.BlockN / 16, "one S = QK^T chain and one O += PV chain a tile");
            string element = dtype == "DType.BFloat16" ? "bf16" : "f16";
            ptx.ShouldContain($"k16.f32.{element}.{element}");
            module.Count(c => c == '{').ShouldBe(module.Count(c => c == '}'));
        }
    }

    /// <summary>A module's entry points by name, each from its <c>.visible .entry</c> line to the next.</summary>
    private static Dictionary<string, string> Entries(string ptx) =>
        Regex.Split(ptx, @"(?=\.visible \.entry )").Skip(1)
            .ToDictionary(e => Regex.Match(e, @"^\.visible \.entry (\w+)\(").Groups[1].Value, e => e);

    /// <summary>
    /// An entry point's passes: pass i is the producer's and the consumers' code of that pass (the first with the setup and
    /// declarations before the roles split).
    /// </summary>
    private static List<string> Passes(string entry)
    {
        var roles = Regex.Split(entry, @"(?=^\$L_consumer_\d+:$)", RegexOptions.Multiline);
        roles.Length.ShouldBe(2, "one producer branch, one consumer branch");
        var producer = Regex.Split(roles[0], @"(?=    // Pass \d of this tile)");
        var consumer = Regex.Split(roles[1], @"(?=    // Pass \d of this tile)");
        producer.Length.ShouldBe(consumer.Length);
        return producer.Zip(consumer, (a, b) => a + b).ToList();
    }

    /// <summary>An entry point's fast pass (<see cref="Passes"/>).</summary>
    private static string FastPass(string entry) => Passes(entry)[0];

    [Theory]
    [InlineData("DType.Float16", 64, "MaskKind.Causal")]
    [InlineData("DType.BFloat16", 128, "MaskKind.BlockDiagonal")]
    [InlineData("DType.Float16", 256, "MaskKind.None")]
    public void EveryKernelVotesOnNaNAndOnlyThenComputesItsTileAgainExactly(string dtype, int headDim, string mask)
    {
        var source = Generate(dtype, headDim, mask).HopperSources.Values.Single();
        var entries = Modules(source).SelectMany(m => Entries(m.Ptx))
            .Concat(Entries(Regex.Match(source, @"HopperBackwardPtx => @""(.*?)""u8;", RegexOptions.Singleline).Groups[1].Value))
            .ToList();
        entries.Count.ShouldBeGreaterThanOrEqualTo(3);
        string nan = dtype == "DType.BFloat16" ? "0x7FC0" : "0x7E00";
        foreach (var (name, entry) in entries)
        {
            // The passes: every kernel sanitizes; those whose product must carry a non-finite operand to exactly the rows
            // that weigh it (the forward's O, dV) poison after that.
            bool poisons = name == "xformers_forward_sm90a" || name == "xformers_backward_v_sm90a" || name == "xformers_backward_kv_sm90a" && headDim <= 128;
            entry.Contains("// Pass 2 of this tile (Sanitize)", StringComparison.Ordinal).ShouldBeTrue(name);
            entry.Contains("// Pass 3 of this tile (Poison)", StringComparison.Ordinal).ShouldBe(poisons, name);
            var passes = Passes(entry);
            passes.Count.ShouldBe(poisons ? 3 : 2, name);
            // The fast pass: its stores note NaN, then every thread votes (the non-aligned barrier: each role reaches it from
            // its own code); a CTA that saw none returns there.
            string fast = passes[0];
            fast.ShouldContain("or.pred %nan_seen, %nan_seen", Case.Sensitive, name);
            Regex.Matches(entry, @"barrier\.red\.or\.pred %nan_in_tile, 2, \d+, %nan_seen;").Count.ShouldBe(2, name + ": one vote in each role");
            fast.ShouldNotContain("fence.proxy.async", Case.Sensitive, name);
            // setmaxnreg in the fast pass only: later passes keep the registers it gave each role.
            Regex.Matches(entry, @"setmaxnreg\.(inc|dec)").Count.ShouldBe(2, name);
            // Later passes write the mbarriers again (invalidated first) and rewrite staged tiles that hold a NaN or Inf.
            foreach (var later in passes.Skip(1))
            {
                later.ShouldContain("mbarrier.inval.shared::cta.b64");
                later.ShouldContain("barrier.red.or.pred");
                later.ShouldContain("fence.proxy.async.shared::cta");
                later.ShouldNotContain("or.pred %nan_seen, %nan_seen");
            }
            if (poisons)
            {
                // The poisoning pass: the weights' 0/1 indicator against the tile's, NaN stored only where it is not 0.
                string poison = passes[^1];
                poison.ShouldContain("setp.neu.f32");
                Regex.IsMatch(poison, @"@%\w+ or\.b32 %\w+, %\w+, " + nan + ";").ShouldBeTrue(name);
                poison.ShouldContain("ld.global.b32");
                poison.ShouldNotContain("st.global.f32", Case.Sensitive, "no log-sum-exp or other fp32 store");
            }
        }
    }

    [Fact]
    public void MaskCodeFollowsTheMaskKindAndBiasCodeTheBiasKind()
    {
        string Ptx(string mask, string bias) => Modules(Generate("DType.Float16", 128, mask, bias).HopperSources.Values.Single())[0].Ptx;

        var none = Ptx("MaskKind.None", "BiasKind.None");
        none.ShouldNotContain("q_segment_pointer");
        none.ShouldNotContain("%nctaid.x", Case.Sensitive, "no causal reordering of CTAs without a causal mask");
        none.ShouldNotContain("ld.global.nc.b16");
        none.ShouldContain("ld.param.f32 %c_log2, [scale_log2];");

        var packed = Ptx("MaskKind.BlockDiagonalCausal", "BiasKind.Alibi");
        packed.ShouldContain("ld.param.u64 %q_segment_pointer, [q_segment];");
        packed.ShouldContain("%nctaid.x");
        packed.ShouldContain("alibi_offset0");

        var tensorBias = Ptx("MaskKind.CausalFromBottomRight", "BiasKind.Tensor");
        tensorBias.ShouldContain("ld.global.nc.b16");
        tensorBias.ShouldContain("mov.f32 %c_log2, 0f3FB8AA3B;", Case.Sensitive, "with a bias the softmax works on scale * qk + bias in log2 units");
    }

    [Theory]
    [InlineData("MaskKind.CausalLocalFromBottomRight", true)]
    [InlineData("MaskKind.BlockDiagonalCausalLocal", true)]
    [InlineData("MaskKind.BlockDiagonalCausalLocalFromBottomRight", true)]
    [InlineData("MaskKind.BlockDiagonalCausalFromBottomRight", false)]
    [InlineData("MaskKind.CausalFromBottomRight", false)]
    public void LocalMasksTakeTheirWindowAsEveryEntryPointsLastParameter(string mask, bool local)
    {
        // HeadDim 64: the forward (and its small-grid twin where the plan has one), the backward's dK/dV and dQ entry points.
        var source = Generate("DType.Float16", 64, mask).HopperSources.Values.Single();
        var entries = Regex.Matches(source, @"\.visible \.entry (\w+)\(\n(.*?)\)\n", RegexOptions.Singleline);
        entries.Count.ShouldBeGreaterThanOrEqualTo(3);
        foreach (Match entry in entries)
        {
            var parameters = entry.Groups[2].Value.Split(",\n").Select(p => p.Trim()).ToList();
            if (local)
                parameters[^1].ShouldBe(".param .u32 window", entry.Groups[1].Value);
            parameters.Count(p => p.Contains("window", StringComparison.Ordinal)).ShouldBe(local ? 1 : 0, entry.Groups[1].Value);
        }
        // Each entry point reads it at its setup: once, then in both roles before each later pass.
        foreach (Match entry in entries)
        {
            string text = source[entry.Index..];
            text = text[..(text.IndexOf("\n}\n", StringComparison.Ordinal) + 3)];
            Regex.Matches(text, @"ld\.param\.u32 %window, \[window\];").Count.ShouldBe(local ? 1 + 2 * (Passes(text).Count - 1) : 0);
        }
        bool packed = mask.Contains("BlockDiagonal", StringComparison.Ordinal);
        source.Contains("ld.param.u64 %q_start_pointer, [q_start];", StringComparison.Ordinal).ShouldBe(packed);
    }

    [Theory]
    [InlineData("DType.Float16", 64, "BiasKind.None", "", true)]
    [InlineData("DType.BFloat16", 128, "BiasKind.Tensor", ", BiasGradient = true", true)]
    [InlineData("DType.Float16", 256, "BiasKind.None", "", true)]
    [InlineData("DType.Float16", 32, "BiasKind.None", "", false)]
    [InlineData("DType.Float16", 64, "BiasKind.None", ", Backward = false", false)]
    public void TheBackwardModuleHasItsPassesWithoutAtomics(string dtype, int headDim, string bias, string extra, bool expected)
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + $$"""
            namespace Hopper;

            public static partial class Kernels
            {
                [Attention(Mask = MaskKind.Causal, Bias = {{bias}}, HeadDim = {{headDim}}, DType = {{dtype}}{{extra}})]
                public static partial AttentionKernel Variant();
            }
            """).ShouldNotHaveThrown();
        run.OutputErrors.ShouldBeEmpty();
        var source = run.HopperSources.Values.SingleOrDefault() ?? "";
        run.Sources.Values.Single(s => s.Contains(" Variant() =>", StringComparison.Ordinal))
            .Contains("hopperBackward: HopperBackward", StringComparison.Ordinal).ShouldBe(expected);
        var ptxMatch = Regex.Match(source, @"HopperBackwardPtx => @""(.*?)""u8;", RegexOptions.Singleline);
        ptxMatch.Success.ShouldBe(expected);
        if (!expected)
            return;
        string ptx = ptxMatch.Groups[1].Value.Replace("\"\"", "\"");
        int Number(string name) => int.Parse(Regex.Match(source, name + @": (\d+)").Groups[1].Value, CultureInfo.InvariantCulture);

        ptx.All(c => c < 128).ShouldBeTrue("ptxas takes ASCII only");
        // Above HeadDim 128, dK and dV take a pass each (together they would need 256 registers a thread).
        bool split = headDim > 128;
        Regex.Matches(ptx, @"\.visible \.entry (\w+)\(").Select(x => x.Groups[1].Value)
            .ShouldBe(split
                ? new[] { "xformers_backward_kv_sm90a", "xformers_backward_v_sm90a", "xformers_backward_q_sm90a" }
                : new[] { "xformers_backward_kv_sm90a", "xformers_backward_q_sm90a" });
        source.Contains("ValuesEntryPoint = \"xformers_backward_v_sm90a\"", StringComparison.Ordinal).ShouldBe(split);
        // Deterministic by construction: no atomic or reduction instruction anywhere, so no order of arrival can change a bit.
        Regex.IsMatch(ptx, @"^\s+(@!?%\w+\s+)?(atom|red)\.", RegexOptions.Multiline).ShouldBeFalse();

        // dK/dV: 128 keys (two consumer warpgroups of 64) against 64-row query tiles; Sᵀ and dPᵀ chains of HeadDim / 16
        // wgmma (n = 64), then dV and dK chains of 4 (k = 64, n = HeadDim). dQ: S and dP chains of HeadDim / 16 (n = the key
        // tile), then one dQ chain of keyTile / 16.
        Number("keyRows").ShouldBe(128);
        int queryTile = Number("queryTileRows");
        queryTile.ShouldBe(split ? 32 : 64);
        Number("queryRows").ShouldBe(128);
        int keyTile = Number("keyTileRows");
        keyTile.ShouldBe(headDim == 64 ? 128 : split ? 32 : 64);
        var byName = Entries(ptx);
        string kv = FastPass(byName["xformers_backward_kv_sm90a"]), q = FastPass(byName["xformers_backward_q_sm90a"]);
        // dK and dV: Sᵀ and dPᵀ (HeadDim / 16 each), dK and dV (queryTile / 16 each); split, the dK pass skips dV and the
        // dV pass skips dPᵀ and dK.
        Regex.Matches(kv, @"wgmma\.mma_async").Count.ShouldBe(2 * (headDim / 16) + (split ? 1 : 2) * (queryTile / 16));
        if (split)
            Regex.Matches(FastPass(byName["xformers_backward_v_sm90a"]), @"wgmma\.mma_async").Count.ShouldBe(headDim / 16 + queryTile / 16);
        Regex.Matches(q, @"wgmma\.mma_async").Count.ShouldBe(2 * (headDim / 16) + keyTile / 16);
        kv.ShouldContain($"wgmma.mma_async.sync.aligned.m64n{headDim}k16");
        q.ShouldContain($"wgmma.mma_async.sync.aligned.m64n{keyTile}k16");

        // Shared memory, the layout's formula: two resident 128-row tiles, Stages tiles in each of two rings, the dK/dV
        // pass's row vectors (−log2(e)·Lse and Delta of 64 rows a stage), then 1 + 4·Stages mbarriers.
        int kvShared = Number("keysAndValuesSharedBytes"), qShared = Number("queriesSharedBytes");
        int Stages(int shared, int ring, int vectors) => (shared - 2 * 128 * headDim * 2 - 8) / (2 * ring * headDim * 2 + vectors + 32);
        int kvStages = Stages(kvShared, queryTile, 2 * queryTile * 4), qStages = Stages(qShared, keyTile, 0);
        kvShared.ShouldBe(2 * 128 * headDim * 2 + kvStages * (2 * queryTile * headDim * 2 + 2 * queryTile * 4) + (1 + 4 * kvStages) * 8);
        qShared.ShouldBe(2 * 128 * headDim * 2 + qStages * 2 * keyTile * headDim * 2 + (1 + 4 * qStages) * 8);
        kvShared.ShouldBeLessThanOrEqualTo(227 * 1024);
        qShared.ShouldBeLessThanOrEqualTo(227 * 1024);
        kvStages.ShouldBeInRange(2, 4);
        qStages.ShouldBeInRange(2, 4);

        // The gradient of a tensor bias is written by the dQ pass, element by element, only when asked for.
        q.Contains("[dbias]", StringComparison.Ordinal).ShouldBe(extra.Contains("BiasGradient", StringComparison.Ordinal));
        kv.ShouldNotContain("[dbias]");
    }

    [Theory]
    [InlineData(64, "ScoreMod = nameof(Softcap)", true, false)]
    [InlineData(128, "MaskMod = nameof(Window)", false, true)]
    [InlineData(128, "Mask = MaskKind.Causal, ScoreMod = nameof(Softcap), MaskMod = nameof(Window)", true, true)]
    [InlineData(256, "MaskMod = nameof(Window)", false, true)]
    public void AVariantWithModsHasAnSm90aBackwardThatLowersThem(int headDim, string mods, bool score, bool mask)
    {
        var run = GeneratorHarness.Run(GeneratorHarness.Usings + $$"""
            using System;

            namespace Hopper;

            public static partial class Kernels
            {
                [Attention(HeadDim = {{headDim}}, DType = DType.BFloat16, {{mods}})]
                public static partial AttentionKernel Variant();

                static float Softcap(float score, int batch, int head, int q, int kv) => 30f * MathF.Tanh(score / 30f);
                static bool Window(int batch, int head, int q, int kv) => q >= kv && q - kv < 256;
            }
            """).ShouldNotHaveThrown();
        run.Diagnostics.ShouldBeEmpty();
        run.OutputErrors.ShouldBeEmpty();
        var source = run.HopperSources.Values.Single();
        run.Sources.Values.Single(s => s.Contains(" Variant() =>", StringComparison.Ordinal))
            .ShouldContain("hopperBackward: HopperBackward");
        var ptxMatch = Regex.Match(source, @"HopperBackwardPtx => @""(.*?)""u8;", RegexOptions.Singleline);
        ptxMatch.Success.ShouldBeTrue();
        string ptx = ptxMatch.Groups[1].Value.Replace("\"\"", "\"");
        Regex.IsMatch(ptx, @"^\s+(@!?%\w+\s+)?(atom|red)\.", RegexOptions.Multiline).ShouldBeFalse();
        int Number(string name) => int.Parse(Regex.Match(source, name + @": (\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
        // The mods' per-element code needs registers: the streamed tiles are shorter than without mods where they are tight.
        Number("queryTileRows").ShouldBe(headDim == 64 ? 64 : 32);
        Number("keyTileRows").ShouldBe(headDim == 256 ? 32 : 64);

        var entries = Regex.Split(ptx, @"\.visible \.entry ").Skip(1).ToList();
        entries.Count.ShouldBe(headDim > 128 ? 3 : 2);
        foreach (var entry in entries)
        {
            // Every entry point takes the mods' arguments and a block list after the backward's own parameters.
            Regex.Matches(entry, @"\.param [^\n]*?(\w+)(\[\d+\])?[,)]?\n").Select(m => m.Groups[1].Value).TakeLast(6)
                .ShouldBe(new[] { "scale_log2", "mod_args", "block_list", "block_rows_b", "block_rows_h", "block_cols" });
            bool valuesOnly = entry.StartsWith("xformers_backward_v_sm90a", StringComparison.Ordinal);
            // The score mod everywhere; its derivative wherever dS is formed (every pass but HeadDim 256's dV pass).
            entry.Contains("// score mod Softcap", StringComparison.Ordinal).ShouldBe(score);
            entry.Contains("// d(score mod Softcap)/d(score)", StringComparison.Ordinal).ShouldBe(score && !valuesOnly);
            // The mask mod on partial tiles of the block list; dS zeroed where it hides a score.
            entry.Contains("// mask mod Window", StringComparison.Ordinal).ShouldBe(mask);
            entry.Contains("ld.param.u64 %", StringComparison.Ordinal).ShouldBeTrue();
            Regex.IsMatch(entry, @"ld\.param\.u64 %\w+, \[block_list\];").ShouldBe(mask);
            entry.Contains("Mask mod: dS = 0 wherever P = 0", StringComparison.Ordinal).ShouldBe(mask && !valuesOnly);
        }

        // The forward has the built-in masks' CTAs: 192 rows (three consumer warpgroups) at HeadDim 64 with a 128-row
        // module for grids those fill badly, 128 rows above; every module lowers the mods.
        var forwards = Modules(source);
        forwards.Select(m => m.BlockM).ShouldBe(headDim == 64 ? new[] { 192, 128 } : new[] { 128 });
        if (headDim == 64)
        {
            // A score mod keeps the consumers on per-score work: the 128-row module does as much a row (relative throughput 1).
            var throughput = Regex.Match(source, @"RelativeThroughput = ([\d.]+)").Groups[1].Value;
            throughput.ShouldBe(score ? "1" : "0.82");
        }
        foreach (var module in forwards)
        {
            module.Threads.ShouldBe((module.BlockM / 64 + 1) * 128);
            module.Ptx.Contains("// score mod Softcap", StringComparison.Ordinal).ShouldBe(score);
            module.Ptx.Contains("// mask mod Window", StringComparison.Ordinal).ShouldBe(mask);
        }
    }

    /// <summary>The modules a generated Hopper file constructs, with their numbers and PTX.</summary>
    private static List<(string EntryPoint, int Threads, int SharedBytes, int BlockM, int BlockN, int HeadDim, string Ptx)> Modules(string source)
    {
        var result = new List<(string, int, int, int, int, int, string)>();
        var constructions = Regex.Matches(source,
            @"entryPoint: ""(\w+)"",\s*threads: (\d+),\s*sharedBytes: (\d+),\s*blockM: (\d+),\s*blockN: (\d+),\s*headDim: (\d+),\s*" +
            @"ptx: static \(\) => global::System\.Text\.Encoding\.UTF8\.GetString\((\w+)\)\)");
        foreach (Match c in constructions)
        {
            var constant = Regex.Match(source, c.Groups[7].Value + @" => @""(.*?)""u8;", RegexOptions.Singleline);
            constant.Success.ShouldBeTrue();
            int Int(int group) => int.Parse(c.Groups[group].Value, CultureInfo.InvariantCulture);
            result.Add((c.Groups[1].Value, Int(2), Int(3), Int(4), Int(5), Int(6), constant.Groups[1].Value.Replace("\"\"", "\"")));
        }
        return result;
    }
}
