using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using Spectre.Console;
using XFormers;
using XFormers.Dsl;
using XFormers.Samples;
using XFormers.Samples.TinyGpt;
using XFormers.Training;

return Cli.Run(Options.Command(options => Train(options, args)), args);

static int Train(Options options, string[] args)
{
    // Data parallel: --gpus N starts N ranks of this same command (RankLauncher); a rank finds its place in its environment.
    var rankEnvironment = RankEnvironment.FromEnvironment();
    if (options.Gpus is int gpus && gpus > 1 && rankEnvironment is null)
        return RankLauncher.Run(gpus, args);
    int rank = rankEnvironment?.Rank ?? 0;
    int world = rankEnvironment?.WorldSize ?? 1;
    if (rank != 0)
        Console.SetOut(TextWriter.Null);    // rank 0 logs, plots and writes checkpoints; the others only train

    // On CUDA the trainer runs on the device's primary context, the one cuBLAS and NCCL use (docs/TRAINING.md, "One CUDA context").
    using var context = PrimaryCudaContext.Create(Cli.Device(options.Device));
    Console.WriteLine($"device: {context.Description}");
    using var communicator = world > 1 ? new NcclCommunicator(context, rank, world, rankEnvironment!.NcclId) : null;

    // Text data: GPT-2 BPE or characters (the tokenizer's name and table go into the checkpoint, so --resume maps text the same way).
    TextTokenizer? tokenizer = null;
    IReadOnlyDictionary<string, string>? resumed = null;
    TinyGptConfig config;
    if (options.Resume is not null)
    {
        (config, resumed) = TinyGptTrainer.ReadCheckpointConfig(options.Resume);
        tokenizer = TokenizerOf(resumed);
        config = config with { Steps = options.Steps ?? config.Steps };
    }
    else
    {
        config = new TinyGptConfig();
        var changes = new List<string>();
        if (context.IsCpu && options.Batch is null && options.Bench is null)
        {
            // ILGPU's CPU accelerator runs the attention kernels at a few GFLOP/s at best: a smaller batch keeps
            // a run on 2 cores under 5 minutes, and the counting task still reaches 100 % in a few dozen steps.
            changes.Add($"batch {config.Batch} → 2");
            config = config with { Batch = 2 };
            if (options.Steps is null)
            {
                changes.Add($"steps {config.Steps} → 200");
                config = config with { Steps = 200 };
            }
        }
        if (changes.Count > 0)
            Console.WriteLine($"CPU run: {string.Join(", ", changes)} (pass --batch/--steps to choose yourself)");
        config = config with
        {
            Layers = options.Layers ?? config.Layers,
            Dim = options.Dim ?? config.Dim,
            Heads = options.Heads ?? config.Heads,
            Sequence = options.Sequence ?? config.Sequence,
            Batch = options.Batch ?? config.Batch,
            Steps = options.Steps ?? config.Steps,
            Vocab = options.Vocab ?? config.Vocab,
            Seed = options.Seed ?? config.Seed,
            LearningRate = options.LearningRate ?? config.LearningRate,
            DType = options.DType ?? config.DType,
        };
    }
    int[]? text = null;
    TokenFile? tokenFile = null;
    if (options.Data is not null)
    {
        if (TokenFile.IsTokenFile(options.Data))
        {
            tokenFile = TokenFile.Open(options.Data);
            if (tokenizer is not null && (tokenizer.Name != tokenFile.Tokenizer.Name || tokenizer.Table != tokenFile.Tokenizer.Table))
                throw new ArgumentException($"--data {options.Data} was written by the {tokenFile.Tokenizer.Name} tokenizer; the checkpoint's is {tokenizer.Name} (another table).");
            tokenizer ??= tokenFile.Tokenizer;
            Console.WriteLine($"data: {options.Data}, {tokenFile.Count:N0} {tokenizer.Name} tokens (memory-mapped), vocabulary of {tokenizer.VocabSize:N0}");
        }
        else
        {
            string content = File.ReadAllText(options.Data);
            tokenizer ??= options.Tokenizer == TextTokenizer.CharacterName ? CharacterTokenizer.FromText(content) : Gpt2Tokenizer.Instance;
            text = tokenizer.Encode(content);
            Console.WriteLine($"data: {options.Data}, {content.Length:N0} characters, {text.Length:N0} {tokenizer.Name} tokens, vocabulary of {tokenizer.VocabSize:N0}");
            if (options.Prepare is string prepared)
            {
                TokenFile.Write(prepared, text, tokenizer);
                Console.WriteLine($"token file: {Path.GetFullPath(prepared)} ({new FileInfo(prepared).Length:N0} bytes); train on it with --data {prepared}");
                return 0;
            }
        }
        // GPT-2's 50,257 ids padded to a multiple of 128 (50,304, as llm.c does) keep the head's GEMM on fast tile shapes.
        if (options.Resume is null)
            config = config with { Vocab = options.Vocab ?? (tokenizer is Gpt2Tokenizer ? (tokenizer.VocabSize + 127) / 128 * 128 : tokenizer.VocabSize) };
        if (config.Vocab < tokenizer.VocabSize)
            throw new ArgumentException($"--vocab {config.Vocab} is smaller than the {tokenizer.Name} tokenizer's {tokenizer.VocabSize} ids.");
    }
    using var mapped = tokenFile;
    if (options.Prepare is not null && text is null)
        throw new ArgumentException("--prepare needs --data with a text file to tokenize.");

    var gemm = options.Gemm switch
    {
        "cublas" => GemmBackend.CuBlas,
        "kernel" => GemmBackend.Kernel,
        "managed" => GemmBackend.Managed,
        _ => GemmBackend.Auto,
    };
    var attention = config.HeadDim == 16 && config.DType == DType.Float16 ? Variants.CausalAttention() : null;
    var data = tokenFile is not null ? TokenBatch.FromTokenFile(context, config.Vocab, tokenFile, config.Seed)
        : text is not null ? TokenBatch.FromTokens(context, config.Vocab, text, config.Seed)
        : TokenBatch.Counting(context, config.Vocab, config.Seed);
    using var trainer = new TinyGptTrainer(context, config, data, attention, gemm, communicator);
    // Checked before the first step: an unwritable target fails now, not after the training (and stale temp files go).
    if (rank == 0)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.Checkpoint))!);
        trainer.CheckpointPath = Path.GetFullPath(options.Checkpoint);
    }
    if (options.Resume is not null)
    {
        trainer.LoadCheckpoint(options.Resume, options.AllowNonFinite);
        Console.WriteLine($"resumed {options.Resume} at step {trainer.Step}");
    }
    // Plain lines of at most about 80 columns: they stay readable in a terminal and in a log.
    Console.WriteLine($"model: {config.Layers} layers, d {config.Dim}, {config.Heads} heads, hidden {config.HiddenWidth}, vocab {config.Vocab}; {trainer.Model.ParameterCount:N0} parameters");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"training: {config.DType}, batch {config.Batch} x seq {config.Sequence}, lr {config.LearningRate}, steps {config.Steps}, seed {config.Seed}"));
    Console.WriteLine($"attention: {trainer.Model.Attention.Variant.Name}; GEMM: {trainer.Model.Gemm.Description}");
    if (world > 1)
    {
        var buckets = trainer.Model.Buckets!.Buckets;
        Console.WriteLine($"data parallel: {world} ranks over NCCL {Nccl.Version()}, batch {config.Batch} = {world} x {config.Batch / world}; gradients averaged in {buckets.Count} buckets during the backward");
    }

    if (options.Bench is int timed)
    {
        int warmup = Math.Min(20, Math.Max(3, timed / 5));
        trainer.TimeSteps(warmup);
        double seconds = trainer.TimeSteps(timed);
        double tokens = (double)config.Batch * config.Sequence / seconds;
        var last = trainer.Model.ReadMetrics(trainer.Step - 1, 1)[0];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench: {seconds * 1e3:F3} ms/step, {tokens:F0} tokens/s over {timed} steps after {warmup} warm-up (last loss {last.Loss:F4}, acc {last.Accuracy:P1})"));
        return 0;
    }

    if (options.Profile is int profiled)
    {
        trainer.TimeSteps(3);
        double plain = trainer.TimeSteps(profiled);
        var launcher = trainer.Model.Launcher;
        launcher.Profile = new Dictionary<string, (int Count, double Seconds)>();
        double waited = trainer.TimeSteps(profiled);
        var profile = launcher.Profile;
        launcher.Profile = null;
        double total = profile.Values.Sum(e => e.Seconds);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"profile over {profiled} steps: {plain * 1e3:F3} ms/step as usual, {waited * 1e3:F3} ms/step with a wait after each operation"));
        foreach (var (label, entry) in profile.OrderByDescending(p => p.Value.Seconds))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {label,-40} {entry.Count / (double)profiled,6:F1} calls/step {entry.Seconds / profiled * 1e3,9:F3} ms/step {entry.Seconds / total,7:P1}"));
        }
        return 0;
    }

    // Ctrl+C (SIGINT) or SIGTERM (a scheduler's or `kill`'s stop): the step in progress finishes, then the checkpoint is
    // written; the same signal again ends the process at once. The exit code is 128 + the signal, as a shell reports it.
    // A process started with SIGINT ignored (a background job of a script) keeps it ignored, as .NET respects inherited
    // ignored signals; SIGTERM still stops it with a checkpoint.
    using var interrupt = new CancellationTokenSource();
    int stopSignal = 0;
    bool RequestStop(int signal, string name)
    {
        if (Interlocked.CompareExchange(ref stopSignal, signal, 0) != 0)
            return false;
        interrupt.Cancel();
        Console.Error.WriteLine($"interrupted ({name}): stopping after this step and writing the checkpoint ({name} again to quit now)");
        return true;
    }
    ConsoleCancelEventHandler onCancel = (_, e) => e.Cancel = RequestStop(2, "Ctrl+C");
    // Ranks would stop at different steps and wait on each other in NCCL: with several, a signal ends them (--save-every keeps progress).
    using var onTerminate = world == 1
        ? System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, c => c.Cancel = RequestStop(15, "SIGTERM"))
        : null;
    if (world == 1)
        Console.CancelKeyPress += onCancel;
    var extra = tokenizer is null ? null : new Dictionary<string, string> { ["tokenizer"] = tokenizer.Name };
    if (tokenizer?.Table is string table)
        extra!["chars"] = table;
    void Save()
    {
        if (rank != 0)
            return;
        string? folder = Path.GetDirectoryName(Path.GetFullPath(options.Checkpoint));
        if (folder is not null)
            Directory.CreateDirectory(folder);
        trainer.SaveCheckpoint(options.Checkpoint, extra);
    }

    bool live = !options.Plain && KernelCompilation.IsLive(AnsiConsole.Console);
    void Report(StepMetrics m)
    {
        if (m.Step % options.PrintEvery == 0 || m.Step == config.Steps - 1)
        {
            string line = string.Create(CultureInfo.InvariantCulture, $"step {m.Step,5} | loss {m.Loss:F4} | acc {m.Accuracy:F3} | {m.Seconds:F1} s");
            // Under the live bar, lines go through Spectre, which prints them above the bar.
            if (live)
                AnsiConsole.WriteLine(line);
            else
                Console.WriteLine(line);
        }
    }

    // Train in chunks of --save-every steps (one chunk without it), writing the checkpoint after each.
    void TrainChunks(Action<StepMetrics> onStep)
    {
        while (trainer.Step < config.Steps && !interrupt.IsCancellationRequested)
        {
            int until = options.SaveEvery is int every ? Math.Min(config.Steps, (trainer.Step / every + 1) * every) : config.Steps;
            trainer.Train(untilStep: until, onStep: onStep, cancellationToken: interrupt.Token);
            if (options.SaveEvery is not null && trainer.Step < config.Steps && !interrupt.IsCancellationRequested)
                Save();
        }
    }

    KernelCompilation.Prepare(AnsiConsole.Console, context, includeBackward: true, trainer.Model.Attention);
    int firstStep = trainer.Step;
    if (!live)
    {
        TrainChunks(Report);
    }
    else
    {
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(progress =>
            {
                var task = progress.AddTask("training", maxValue: config.Steps);
                task.Value = firstStep;
                TrainChunks(m =>
                {
                    task.Value = m.Step + 1;
                    Report(m);
                });
            });
    }
    Console.CancelKeyPress -= onCancel;
    onTerminate?.Dispose();
    if (interrupt.IsCancellationRequested)
    {
        Save();
        Console.WriteLine($"checkpoint: {Path.GetFullPath(options.Checkpoint)} (step {trainer.Step}; continue with --resume {options.Checkpoint})");
        return 128 + stopSignal;
    }

    if (rank != 0)
        return 0;
    var history = trainer.History;
    if (history.Count > 0)
    {
        var final = history[^1];
        int reached = history.FirstOrDefault(m => m.Accuracy >= 0.99f).Step;
        bool any = history.Any(m => m.Accuracy >= 0.99f);
        string reachedText = any ? $"≥ 99 % first at step {reached}" : "never reached 99 %";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: {history.Count} steps in {final.Seconds:F1} s ({final.Seconds / history.Count * 1e3:F1} ms/step), final loss {final.Loss:F4}, acc {final.Accuracy:P1}"));
        Console.WriteLine($"accuracy {reachedText}");
        try
        {
            double tokensPerSecond = (double)history.Count * config.Batch * config.Sequence / Math.Max(final.Seconds, 1e-9);
            string title = LossPlot.Title(config.Layers, config.Dim, trainer.Model.ParameterCount, config.DType.ToString(), tokensPerSecond, context.IsCuda ? "CUDA" : "CPU");
            LossPlot.Save(options.Plot, history.Select(m => (m.Step, m.Loss)).ToArray(), title);
            Console.WriteLine($"loss curve: {Path.GetFullPath(options.Plot)}");
        }
        catch (Exception e)
        {
            Console.WriteLine($"loss curve not drawn: {e.GetType().Name}: {e.Message}");
        }
    }

    Save();
    Console.WriteLine($"checkpoint: {Path.GetFullPath(options.Checkpoint)} (step {trainer.Step})");

    if (options.Generate is int generate)
    {
        var prompt = options.Prompt is string given ? Generation.Prompt(given, tokenizer, config.Vocab)
            : text is not null ? text.Take(Math.Min(8, text.Length)).ToArray()
            : tokenFile is not null ? tokenFile.Tokens(0, (int)Math.Min(8, tokenFile.Count)).ToArray().Select(t => (int)t).ToArray()
            : tokenizer is null ? new[] { 5, 6, 7 } : new[] { 0 };
        Generation.Run(trainer.Model, tokenizer, prompt, generate, options.Temperature, options.TopK, config.Seed);
    }
    else if (tokenizer is not null && options.SampleLength > 0)
    {
        var prompt = text is not null ? text.Take(Math.Min(8, text.Length)).ToArray()
            : tokenFile is not null ? tokenFile.Tokens(0, (int)Math.Min(8, tokenFile.Count)).ToArray().Select(t => (int)t).ToArray()
            : new[] { 0 };
        var generated = trainer.Generate(prompt, options.SampleLength, temperature: 0.8f, seed: config.Seed, vocabulary: tokenizer.VocabSize);
        Console.WriteLine("sample:");
        Console.WriteLine(tokenizer.Decode(prompt.Concat(generated)));
    }
    else if (tokenizer is null)
    {
        var prompt = new[] { 5, 6, 7 };
        var generated = trainer.Generate(prompt, 12, temperature: 0f);
        Console.WriteLine($"greedy continuation of [{string.Join(", ", prompt)}]: [{string.Join(", ", generated)}]");
    }
    return 0;
}

// The tokenizer a checkpoint names; checkpoints from before the GPT-2 tokenizer hold only a character table.
static TextTokenizer? TokenizerOf(IReadOnlyDictionary<string, string> metadata) =>
    metadata.TryGetValue("tokenizer", out var name) ? TextTokenizer.Create(name, metadata.GetValueOrDefault("chars"))
    : metadata.TryGetValue("chars", out var chars) ? new CharacterTokenizer(chars)
    : null;
