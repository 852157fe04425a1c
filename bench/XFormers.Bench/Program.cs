using System;
using System.Collections.Generic;
using System.CommandLine;
using System.IO;
using System.Linq;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using XFormers.Kernels;
using ILGPU.Runtime.Cuda;
using XFormers.Dsl;
using XFormers.Samples;
using XFormers.Training;

namespace XFormers.Bench
{
    /// <summary>
    /// xformers-bench: the GPU harness (filters S: comma-separated substrings of variant names).
    /// <c>conformance [--filter S] [--shard i/n]</c> checks every stock variant (or every n-th from the i-th) and exits
    /// non-zero on a miss; <c>bench [--out DIR] [--seed] [--throughput] [--only S,…] [--bdn]</c> times (--only keeps the throughput cases whose
    /// "name/dtype" contains one of the substrings); <c>--dump DIR</c> writes a case as
    /// .safetensors; <c>ptx DIR [--filter S] [--hopper-only]</c> writes the PTX of the selected variants' kernels, the generator's sm_90a modules
    /// as NAME.sm90a.ptx (no GPU needed);
    /// <c>decode [--out DIR] [--check-only]</c> checks the KV-cache paths against fp64 and times decoding (decode.csv);
    /// <c>tutorial</c> runs the main sample (samples/XFormers.Tutorial) on this machine's accelerator;
    /// <c>reliability [--large] [--cases S] [--families S] [--rounds N]</c> runs the device checks of docs/RELIABILITY.md (Reliability.cs).
    /// </summary>
    public static class Program
    {
        public static int Main(string[] args)
        {
            var filter = new Option<string?>("--filter") { Description = "comma-separated substrings of variant names", HelpName = "S" };
            var dump = new Option<string?>("--dump") { Description = "also write one fp16 case with a tensor bias as DIR/dump.safetensors", HelpName = "DIR", Recursive = true };
            var root = new RootCommand("The GPU harness: conformance of every stock variant, benchmarks, safetensors dumps, PTX listings.") { dump };
            // `--dump DIR` alone is a command of its own.
            root.SetAction(parsed =>
            {
                if (parsed.GetValue(dump) is null)
                {
                    Console.Error.WriteLine($"{root.Name}: name a command: conformance, bench, tutorial, ptx, or --dump DIR (see --help)");
                    return Cli.UsageError;
                }
                using var context = Start(parsed);
                return 0;
            });

            var shard = new Option<string?>("--shard") { Description = "check every n-th variant from the i-th (0 <= i < n)", HelpName = "i/n" };
            shard.Validators.Add(result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                var parts = text.Split('/');
                if (parts.Length != 2 || !int.TryParse(parts[0], out int i) || !int.TryParse(parts[1], out int n) || n < 1 || i < 0 || i >= n)
                    result.AddError($"--shard {text}: use i/n with 0 <= i < n, e.g. 0/12.");
            });
            var conformance = new Command("conformance", "check every stock variant against fp64 and the naive reference; exits 1 on a miss") { filter, shard };
            conformance.SetAction(parsed =>
            {
                using var context = Start(parsed);
                return Conformance.Run(context, parsed.GetValue(filter), parsed.GetValue(shard)) == 0 ? 0 : 1;
            });

            var outDir = new Option<string?>("--out") { Description = "folder for the tables (default bench-out)", HelpName = "DIR" };
            var seed = new Option<bool>("--seed") { Description = "the seed table" };
            var throughput = new Option<bool>("--throughput") { Description = "the throughput table" };
            var only = new Option<string?>("--only") { Description = "keep the cases whose \"name/dtype/Kk\" (e.g. B4-H16-M4096/fp16/K128) contains one of the comma-separated substrings", HelpName = "S" };
            var bdn = new Option<bool>("--bdn") { Description = "BenchmarkDotNet runs (in-process toolchain)" };
            var gate = new Option<bool>("--gate") { Description = "the forward gate's cases, forward only (ours-gate.csv; --only filters them too)" };
            var bench = new Command("bench", "time the kernels (all tables unless --seed, --throughput, --gate or --bdn picks)") { outDir, seed, throughput, only, bdn, gate };
            bench.SetAction(parsed =>
            {
                using var context = Start(parsed);
                string folder = parsed.GetValue(outDir) ?? "bench-out";
                bool pickSeed = parsed.GetValue(seed), pickThroughput = parsed.GetValue(throughput), pickBdn = parsed.GetValue(bdn), pickGate = parsed.GetValue(gate);
                bool all = !pickSeed && !pickThroughput && !pickBdn && !pickGate;
                if (all || pickSeed || pickThroughput)
                    Benchmarks.RunTable(context, folder, all || pickSeed, all || pickThroughput, parsed.GetValue(only));
                if (pickGate)
                    Benchmarks.RunGate(context, folder, parsed.GetValue(only));
                if (pickBdn)
                    Benchmarks.RunBenchmarkDotNet(folder);
                return 0;
            });

            var checkOnly = new Option<bool>("--check-only") { Description = "only the KV-cache conformance, no timing" };
            var decode = new Command("decode", "KV-cache decoding: the KV-cache masks and split-KV against fp64, then the decode table (decode.csv); exits 1 on a miss") { outDir, checkOnly };
            decode.SetAction(parsed =>
            {
                using var context = Start(parsed);
                return Decode.Run(context, parsed.GetValue(outDir) ?? "bench-out", parsed.GetValue(checkOnly)) == 0 ? 0 : 1;
            });

            var mods = new Command("mods", "score and mask mods: FlexAttention's cases against fp64, then timed (mods.csv); exits 1 on a miss") { outDir };
            mods.SetAction(parsed =>
            {
                using var context = Start(parsed);
                return Mods.Run(context, parsed.GetValue(outDir) ?? "bench-out") == 0 ? 0 : 1;
            });

            var local = new Command("local", "local attention: the stock sliding-window variant at B1 H16 M16384 window 1024, sampled rows against fp64, then timed beside causal (local.csv); exits 1 on a miss") { outDir };
            local.SetAction(parsed =>
            {
                using var context = Start(parsed);
                return Local.Run(context, parsed.GetValue(outDir) ?? "bench-out");
            });

            var tutorial = new Command("tutorial", "run the main sample (samples/XFormers.Tutorial) on this machine's accelerator");
            tutorial.SetAction(parsed =>
            {
                using var context = Start(parsed);
                new XFormers.Tutorial.Tutorial(context, Spectre.Console.AnsiConsole.Console).RunAll();
                return 0;
            });

            var ptxDir = new Argument<string>("DIR") { Description = "folder for the .ptx files", DefaultValueFactory = _ => "ptx" };
            var hopperOnly = new Option<bool>("--hopper-only") { Description = "only the generator's sm_90a modules (NAME.sm90a.ptx, NAME-bwd.sm90a.ptx)" };
            var ptx = new Command("ptx", "write the PTX of the selected variants' kernels for sm_90, and their sm_90a forward modules (no GPU needed)") { ptxDir, filter, hopperOnly };
            ptx.SetAction(parsed => WritePtx(parsed.GetValue(ptxDir)!, parsed.GetValue(filter), parsed.GetValue(hopperOnly)));

            var firstResult = new Command("first-result", "time from process start to the first forward result of the selected variants") { filter };
            firstResult.SetAction(parsed =>
            {
                using var context = Start(parsed);
                return FirstResult(context, parsed.GetValue(filter) ?? "None_None_F16_128");
            });

            var ptxTarget = new Command("ptx-target", "print the PTX target ILGPU's own backend writes on this device");
            ptxTarget.SetAction(parsed =>
            {
                using var context = Start(parsed);
                return PtxTarget(context);
            });

            var large = new Option<bool>("--large") { Description = "also the device-sized case: one fp16 call over more than 2^31 K/V elements (about 18 GB)" };
            var largeKeys = new Option<int>("--mkv") { Description = "keys of the --large case (4,200,000: 8 heads × 64 × Mkv > 2^31; a few thousand run its code on the CPU)", DefaultValueFactory = _ => 4_200_000 };
            var cases = new Option<string?>("--cases") { Description = "comma-separated: large, nonfinite, badinput, leak (default all; large only with --large)", HelpName = "S" };
            var families = new Option<string?>("--families") { Description = "non-finite matrix families whose name (F32_64, F16_64, F16_128, BF16_64, BF16_128, F16_256) contains one of the comma-separated substrings", HelpName = "S" };
            var rounds = new Option<int>("--rounds") { Description = "create / run / dispose rounds of the leak check", DefaultValueFactory = _ => 200 };
            var twins = new Option<bool>("--tensor-core-twins") { Description = "on the CPU, run the tensor-core kernels' scalar twins (32-lane warps) instead of the portable kernels" };
            var reliability = new Command("reliability", "issue 13 on this device: past 2^31 elements (--large), NaN/Inf reach exactly the rows that see them, bad inputs, leaks; exits 1 on a FAIL")
            {
                large, largeKeys, cases, families, rounds, twins,
            };
            reliability.SetAction(parsed =>
            {
                var options = new Reliability.Options(parsed.GetValue(large), parsed.GetValue(largeKeys), parsed.GetValue(cases), parsed.GetValue(families), parsed.GetValue(rounds));
                if (!parsed.GetValue(twins))
                {
                    using var context = Start(parsed);
                    return Reliability.Run(context, options) == 0 ? 0 : 1;
                }
                AttentionKernel.TensorCores = Kernels.TensorCorePolicy.Always;
                using var cpu = XFormersContext.CreateCpu(null, threadsPerWarp: 32);
                Console.WriteLine(cpu.Description + ", 32-lane warps: the tensor-core kernels' twins");
                return Reliability.Run(cpu, options) == 0 ? 0 : 1;
            });

            root.Add(conformance);
            root.Add(bench);
            root.Add(decode);
            root.Add(mods);
            root.Add(local);
            root.Add(tutorial);
            root.Add(ptx);
            root.Add(firstResult);
            root.Add(ptxTarget);
            root.Add(reliability);
            return Cli.Run(root, args);

            // The context of a run, and the dump when --dump asks for one.
            XFormersContext Start(ParseResult parsed)
            {
                var context = XFormersContext.Create();
                Console.WriteLine(context.Description);
                if (parsed.GetValue(dump) is { } dumpDir)
                    Dump(context, dumpDir);
                return context;
            }
        }

        /// <summary>q, k, v, bias, O, LSE, dO, dQ, dK, dV (and dBias) of one fp16 case with a tensor bias, as dump.safetensors.</summary>
        private static void Dump(XFormersContext context, string dir)
        {
            Directory.CreateDirectory(dir);
            var c = new Case(2, 256, 256, 4, 4, 64, MaskKind.Causal, BiasKind.Tensor, BiasRequiresGrad: true);
            using var x = c.Create<ILGPU.Half>(context);
            using var forward = Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, x.AttnBias);
            using var grads = Fmha.MemoryEfficientAttentionBackward(x.dO, forward, x.Q, x.K, x.V, x.AttnBias);
            var tensors = new[]
            {
                SafeTensor.From("q", x.Q), SafeTensor.From("k", x.K), SafeTensor.From("v", x.V), SafeTensor.From("bias", x.BiasTensor!),
                SafeTensor.From("O", forward.Output), SafeTensor.From("LSE", forward.Lse), SafeTensor.From("dO", x.dO),
                SafeTensor.From("dQ", grads.Query), SafeTensor.From("dK", grads.Key), SafeTensor.From("dV", grads.Value),
                SafeTensor.From("dBias", grads.Bias!),
            };
            var metadata = new Dictionary<string, string>
            {
                ["layout"] = "BMHK; bias and dBias [B, H, Mq, Mkv]; LSE [B, H, Mq]",
                ["mask"] = "causal (top-left)",
                ["scale"] = (1 / Math.Sqrt(c.HeadDim)).ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                ["variant"] = Fmha.SelectKernel(x.Q, x.K, x.V, x.AttnBias, needBackward: true).Variant.Name,
            };
            string path = Path.Combine(dir, "dump.safetensors");
            SafeTensors.Save(path, tensors, metadata);
            Console.WriteLine($"dump: {c} causal + tensor bias fp16 → {path}");
        }

        /// <summary>
        /// Time from this process's start to the first forward result of the selected stock variants (one each, B1 H8
        /// M1024): the sm_90a module comes from the driver's JIT cache when warm, through its JIT when cold. A part of
        /// <paramref name="filter"/> that is a variant's whole name selects that variant alone (Causal_None_F16_64, not
        /// also BlockDiagonalCausal_None_F16_64); block-diagonal variants, which need seqlens, are skipped.
        /// </summary>
        private static int FirstResult(XFormersContext context, string filter)
        {
            static string ShortName(AttentionKernel k) => k.Variant.Name.Split('.').Last();
            var parts = filter.Split(',');
            var exact = AttentionRegistry.Variants.Where(k => parts.Contains(ShortName(k), StringComparer.OrdinalIgnoreCase)).ToArray();
            var selected = exact.Length > 0 ? exact : AttentionRegistry.Variants.Where(k => Matches(k.Variant.Name, filter)).ToArray();
            foreach (var kernel in selected)
            {
                if (kernel.Variant.Mask.IsBlockDiagonal())
                {
                    Console.WriteLine($"first-result {ShortName(kernel)}: skipped (a block-diagonal mask needs seqlens)");
                    continue;
                }
                var watch = System.Diagnostics.Stopwatch.StartNew();
                var c = new Case(1, 1024, 1024, 8, 8, kernel.Variant.HeadDim, kernel.Variant.Mask, kernel.Variant.Bias);
                double seconds;
                if (kernel.ElementType == typeof(ILGPU.Half))
                {
                    using var x = c.Create<ILGPU.Half>(context);
                    using var f = Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, x.AttnBias, kernel: kernel);
                    context.Synchronize();
                    seconds = watch.Elapsed.TotalSeconds;
                }
                else if (kernel.ElementType == typeof(BFloat16))
                {
                    using var x = c.Create<BFloat16>(context);
                    using var f = Fmha.MemoryEfficientAttentionForward(x.Q, x.K, x.V, x.AttnBias, kernel: kernel);
                    context.Synchronize();
                    seconds = watch.Elapsed.TotalSeconds;
                }
                else
                {
                    continue;
                }
                double sinceStart = (DateTime.Now - System.Diagnostics.Process.GetCurrentProcess().StartTime).TotalSeconds;
                Console.WriteLine($"first-result {kernel.Variant.Name.Split('.').Last()}: {seconds:0.000} s for the call, {sinceStart:0.000} s since the process started; " +
                    $"{kernel.BackendOn(context.Accelerator)}; driver JIT {Hopper.HopperLauncher.CompileMilliseconds(context.Accelerator):0} ms so far");
            }
            return 0;
        }

        /// <summary>Which PTX target ILGPU's own backend picks on this device (it compiles one small kernel to see).</summary>
        private static int PtxTarget(XFormersContext context)
        {
            if (context.Accelerator is not CudaAccelerator cuda)
            {
                Console.WriteLine("ptx-target: not a CUDA device");
                return 1;
            }
            Console.WriteLine($"ptx-target: device architecture {cuda.Architecture}, ILGPU instruction set {cuda.InstructionSet}");
            var backend = (PTXBackend)cuda.GetType()
                .GetProperties(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)
                .First(p => p.Name == "Backend" && p.PropertyType == typeof(PTXBackend))
                .GetValue(cuda)!;
            var method = typeof(Program).GetMethod(nameof(ProbeKernel), System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)!;
            var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromImplicitlyGroupedKernel(method), KernelSpecialization.Empty);
            foreach (var line in compiled.PTXAssembly.Split('\n').Where(l => l.StartsWith(".version", StringComparison.Ordinal) || l.StartsWith(".target", StringComparison.Ordinal)))
                Console.WriteLine("ptx-target: ILGPU writes " + line.Trim());
            return 0;
        }

        private static void ProbeKernel(Index1D i, ArrayView<float> data) => data[i] += 1f;

        /// <summary>Whether a variant's name contains one of the comma-separated substrings of <paramref name="filter"/> (null: all).</summary>
        internal static bool Matches(string name, string? filter) =>
            filter is null || filter.Split(',').Any(part => name.Contains(part, StringComparison.OrdinalIgnoreCase));

        /// <summary>Compiles the selected variants' kernels for sm_90 with ILGPU's PTX backend and writes one .ptx file per kernel.</summary>
        private static int WritePtx(string dir, string? filter, bool hopperOnly)
        {
            Directory.CreateDirectory(dir);
            using var context = Context.Create(b => b.Cuda().Optimize(OptimizationLevel.O2).Inlining(InliningMode.Aggressive).EnableAlgorithms());
            KernelIntrinsics.Register(context);
            using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null);
            var jobs = AttentionRegistry.Variants
                .Where(k => Matches(k.Variant.Name, filter))
                .SelectMany(kernel => (kernel switch
                {
                    AttentionKernel<float> f => f.KernelMethods(),
                    AttentionKernel<ILGPU.Half> h => h.KernelMethods(),
                    AttentionKernel<BFloat16> b => b.KernelMethods(),
                    _ => Enumerable.Empty<(string, System.Reflection.MethodInfo, KernelSpecialization)>(),
                }).Select(m => (Variant: kernel.Variant.Name.Split('.').Last(), m.Item1, m.Item2, m.Item3)))
                .ToArray();
            // The sm_90a forward modules are PTX already (written by the generator): ptxas -arch=sm_90a takes them as they are.
            foreach (var kernel in AttentionRegistry.Variants.Where(k => Matches(k.Variant.Name, filter)))
            {
                var module = kernel switch
                {
                    AttentionKernel<ILGPU.Half> h => h.HopperForward,
                    AttentionKernel<BFloat16> b => b.HopperForward,
                    _ => null,
                };
                if (module is not null)
                    File.WriteAllText(Path.Combine(dir, $"{kernel.Variant.Name.Split('.').Last()}.sm90a.ptx"), module.Ptx);
                var backward = kernel switch
                {
                    AttentionKernel<ILGPU.Half> h => h.HopperBackward,
                    AttentionKernel<BFloat16> b => b.HopperBackward,
                    _ => null,
                };
                if (backward is not null)
                    File.WriteAllText(Path.Combine(dir, $"{kernel.Variant.Name.Split('.').Last()}-bwd.sm90a.ptx"), backward.Ptx);
            }
            // The decode modules the runtime writes (Hopper/DecodeEmitter.cs), named decode-ENTRY.sm90a.ptx.
            if (Matches("decode", filter))
            {
                foreach (var traits in XFormers.Hopper.HopperDecode.AllTraits())
                    File.WriteAllText(Path.Combine(dir, $"decode-{traits.EntryPoint}.sm90a.ptx"), XFormers.Hopper.HopperDecode.Module(traits).Ptx);
            }
            if (hopperOnly)
                return 0;
            // The decode kernel's instances (fp16/bf16 × head dim × rows a key/value head), named decode.*.
            if (Matches("decode", filter))
                jobs = jobs.Concat(DecodeAttention.KernelMethods().Select(m => ("decode", m.Name, m.Method, KernelSpecialization.Empty))).ToArray();
            // ILGPU's compiler is thread-safe: the kernels compile in parallel, one core each.
            System.Threading.Tasks.Parallel.ForEach(jobs, job =>
            {
                var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(job.Item3), job.Item4);
                string file = Path.Combine(dir, $"{job.Variant}.{job.Item2}.ptx");
                File.WriteAllText(file, compiled.PTXAssembly);
                Console.WriteLine($"{file}: {compiled.PTXAssembly.Length} chars");
            });
            return 0;
        }
    }
}
