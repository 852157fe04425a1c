using System;
using System.CommandLine;
using System.IO;
using XFormers.Dsl;
using static XFormers.Samples.Cli;

namespace XFormers.Samples.TinyGpt;

/// <summary>The trainer's command line (System.CommandLine), and the values one parse gave.</summary>
internal sealed class Options
{
    private static readonly Option<string?> DataOption = new("--data") { Description = "train on a text file (tokenized on start) or a token file from --prepare (memory-mapped), with sampled text at the end", HelpName = "FILE" };
    private static readonly Option<string?> TokenizerOption = Choice("--tokenizer", "how --data text becomes tokens: GPT-2 BPE (default) or one token per character", "gpt2", "char");
    private static readonly Option<string?> PrepareOption = new("--prepare") { Description = "tokenize the --data text once into a token file (llm.c's .bin layout) and exit; train with --data PATH", HelpName = "PATH" };
    private static readonly Option<int?> GpusOption = Int("--gpus", "data parallel over N GPUs of this host: starts one process per GPU (NCCL); --batch is the global batch", min: 1);
    private static readonly Option<int?> LayersOption = Int("--layers", "transformer blocks", min: 1);
    private static readonly Option<int?> DimOption = Int("--d", "model width", min: 1);
    private static readonly Option<int?> HeadsOption = Int("--heads", "attention heads", min: 1);
    private static readonly Option<int?> SequenceOption = Int("--seq", "tokens per sequence", min: 1);
    private static readonly Option<int?> BatchOption = Int("--batch", "sequences per step", min: 1);
    private static readonly Option<int?> StepsOption = Int("--steps", "steps to train (with --resume: the step to stop at)", min: 0);
    private static readonly Option<float?> LearningRateOption = Float("--lr", "AdamW learning rate");
    private static readonly Option<int?> VocabOption = Int("--vocab", "vocabulary size of the counting task", min: 2);
    private static readonly Option<int?> SeedOption = Int("--seed", "seed of the weights and the batches", min: int.MinValue);
    private static readonly Option<string?> DTypeOption = Choice("--dtype", "compute type (fp16 trains with dynamic loss scaling; default fp16)", "fp16", "bf16", "fp32");
    private static readonly Option<string?> DeviceOpt = DeviceOption();
    private static readonly Option<string?> OutOption = new("--out") { Description = "folder for the checkpoint and the loss curve (default out/tinygpt)", HelpName = "DIR" };
    private static readonly Option<string?> CheckpointOption = new("--checkpoint") { Description = "safetensors checkpoint, written at the end, every --save-every steps and on Ctrl+C or SIGTERM (default DIR/tinygpt.safetensors)", HelpName = "PATH" };
    private static readonly Option<int?> SaveEveryOption = Int("--save-every", "also write the checkpoint every N steps", min: 1);
    private static readonly Option<string?> ResumeOption = new("--resume") { Description = "continue from a checkpoint (bit-identical on the same device)", HelpName = "PATH" };
    private static readonly Option<string?> PlotOption = new("--plot") { Description = "loss-curve picture (default DIR/tinygpt-loss.png)", HelpName = "PATH" };
    private static readonly Option<int?> SampleOption = Int("--sample", "characters to generate after --data training (default 300)");
    private static readonly Option<int?> GenerateOption = Int("--generate", "sample N tokens after training (or --resume) with the KV cache and by recomputing the window; prints the text and both tokens/s", min: 1);
    private static readonly Option<string?> PromptOption = new("--prompt") { Description = "the text --generate continues (counting task: token ids separated by commas; default: the start of --data, or 5,6,7)", HelpName = "TEXT" };
    private static readonly Option<float?> TemperatureOption = Float("--temperature", "--generate's sampling temperature (default 0.8; 0: the most likely token)");
    private static readonly Option<int?> TopKOption = Int("--top-k", "--generate samples among the K most likely tokens (default 0: all)");
    private static readonly Option<int?> BenchOption = Int("--bench", "time N steps after warm-up instead of training; prints ms/step and tokens/s", min: 1);
    private static readonly Option<int?> ProfileOption = Int("--profile", "time N steps with a wait after every operation; prints where the time goes", min: 1);
    private static readonly Option<string?> GemmOption = Choice("--gemm", "matrix-product backend", "auto", "cublas", "kernel", "managed");
    private static readonly Option<int?> PrintEveryOption = Int("--print-every", "print every N-th step (default 20)", min: 1);
    private static readonly Option<bool> PlainOption = new("--plain") { Description = "plain lines, no live progress bar (the default when output is redirected)" };
    private static readonly Option<bool> AllowNonFiniteOption = new("--allow-nonfinite") { Description = "resume from a checkpoint even if its weights hold NaN or infinity" };

    public int? Gpus, Layers, Dim, Heads, Sequence, Batch, Steps, Vocab, Seed, SaveEvery, Bench, Profile, Generate;
    public float? LearningRate;
    public string? Prompt;
    public float Temperature;
    public int TopK;
    public DType? DType;
    public string? Device, Data, Resume, Gemm, Tokenizer, Prepare;
    public string OutDir = "";
    public string Checkpoint = "";
    public string Plot = "";
    public int SampleLength, PrintEvery;
    public bool Plain, AllowNonFinite;

    /// <summary>The root command: every option above, and <paramref name="run"/> as its action.</summary>
    public static RootCommand Command(Func<Options, int> run)
    {
        var root = new RootCommand("Trains TinyGPT on the counting task (next token = previous + 1 modulo the vocabulary) or a language model of a text file (GPT-2 BPE or characters).")
        {
            DataOption, TokenizerOption, PrepareOption, GpusOption, LayersOption, DimOption, HeadsOption, SequenceOption, BatchOption, StepsOption, LearningRateOption, VocabOption, SeedOption,
            DTypeOption, DeviceOpt, OutOption, CheckpointOption, SaveEveryOption, ResumeOption, PlotOption, SampleOption, GenerateOption, PromptOption, TemperatureOption, TopKOption, BenchOption, ProfileOption,
            GemmOption, PrintEveryOption, PlainOption, AllowNonFiniteOption,
        };
        root.SetAction(parsed => run(From(parsed)));
        return root;
    }

    private static Options From(ParseResult p)
    {
        string outDir = p.GetValue(OutOption) ?? Path.Combine("out", "tinygpt");
        return new Options
        {
            Data = p.GetValue(DataOption),
            Tokenizer = p.GetValue(TokenizerOption),
            Prepare = p.GetValue(PrepareOption),
            Gpus = p.GetValue(GpusOption),
            Layers = p.GetValue(LayersOption),
            Dim = p.GetValue(DimOption),
            Heads = p.GetValue(HeadsOption),
            Sequence = p.GetValue(SequenceOption),
            Batch = p.GetValue(BatchOption),
            Steps = p.GetValue(StepsOption),
            LearningRate = p.GetValue(LearningRateOption),
            Vocab = p.GetValue(VocabOption),
            Seed = p.GetValue(SeedOption),
            DType = p.GetValue(DTypeOption) switch
            {
                "fp16" => XFormers.Dsl.DType.Float16,
                "bf16" => XFormers.Dsl.DType.BFloat16,
                "fp32" => XFormers.Dsl.DType.Float32,
                _ => null,
            },
            Device = p.GetValue(DeviceOpt),
            OutDir = outDir,
            // Paths given on the command line are relative to the current folder; only the defaults go to --out.
            Checkpoint = p.GetValue(CheckpointOption) ?? Path.Combine(outDir, "tinygpt.safetensors"),
            Plot = p.GetValue(PlotOption) ?? Path.Combine(outDir, "tinygpt-loss.png"),
            SaveEvery = p.GetValue(SaveEveryOption),
            Resume = p.GetValue(ResumeOption),
            SampleLength = p.GetValue(SampleOption) ?? 300,
            Generate = p.GetValue(GenerateOption),
            Prompt = p.GetValue(PromptOption),
            Temperature = p.GetValue(TemperatureOption) ?? 0.8f,
            TopK = p.GetValue(TopKOption) ?? 0,
            Bench = p.GetValue(BenchOption),
            Profile = p.GetValue(ProfileOption),
            Gemm = p.GetValue(GemmOption),
            PrintEvery = p.GetValue(PrintEveryOption) ?? 20,
            Plain = p.GetValue(PlainOption),
            AllowNonFinite = p.GetValue(AllowNonFiniteOption),
        };
    }
}
