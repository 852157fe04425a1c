using System;
using System.Globalization;
using XFormers.Dsl;

namespace XFormers.Samples.TinyGpt;

/// <summary>Command-line flags (<c>--name value</c>, or <c>--name</c> alone for switches).</summary>
internal sealed class Options
{
    public int? Layers, Dim, Heads, Sequence, Batch, Steps, Vocab, Seed;
    public float? LearningRate;
    public DType? DType;
    public string? Device, Data, Resume, Gemm;
    public string Checkpoint = "tinygpt.safetensors";
    public string Plot = "tinygpt-loss.png";
    public int SampleLength = 300;
    public int? Bench, Profile;
    public int PrintEvery = 20;
    public bool Plain, Help;

    public const string Usage = """
        XFormers.TinyGpt: trains the seed's TinyGPT (counting up modulo the vocabulary) or a character model of a text file.

          --data FILE.txt        character-level training on FILE, with sampled text at the end
          --layers N  --d N  --heads N  --seq N  --batch N  --steps N  --lr X  --vocab N  --seed N
          --dtype fp16|bf16|fp32 compute type (default fp16 with dynamic loss scaling)
          --device cpu|cuda      (or XFORMERS_DEVICE); default: CUDA when present
          --checkpoint PATH      safetensors file written at the end (default tinygpt.safetensors)
          --resume PATH          continue from a checkpoint (bit-identical on the same device)
          --plot PATH            loss-curve picture (default tinygpt-loss.png)
          --sample N             characters to generate after --data training (default 300)
          --bench N              time N steps after warm-up instead of training; prints ms/step and tokens/s
          --profile N            time N steps with a wait after every operation; prints where the time goes
          --gemm auto|cublas|kernel|managed
          --print-every N        (default 20)   --plain   no live progress bar
        """;

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string flag = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{flag} needs a value.");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (flag)
            {
                case "--layers": o.Layers = Int(); break;
                case "--d": o.Dim = Int(); break;
                case "--heads": o.Heads = Int(); break;
                case "--seq": o.Sequence = Int(); break;
                case "--batch": o.Batch = Int(); break;
                case "--steps": o.Steps = Int(); break;
                case "--vocab": o.Vocab = Int(); break;
                case "--seed": o.Seed = Int(); break;
                case "--lr": o.LearningRate = float.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--dtype": o.DType = ParseDType(Next()); break;
                case "--device": o.Device = Next(); break;
                case "--data": o.Data = Next(); break;
                case "--resume": o.Resume = Next(); break;
                case "--checkpoint": o.Checkpoint = Next(); break;
                case "--plot": o.Plot = Next(); break;
                case "--sample": o.SampleLength = Int(); break;
                case "--bench": o.Bench = Int(); break;
                case "--profile": o.Profile = Int(); break;
                case "--gemm": o.Gemm = Next(); break;
                case "--print-every": o.PrintEvery = Math.Max(1, Int()); break;
                case "--plain": o.Plain = true; break;
                case "-h" or "--help": o.Help = true; break;
                default: throw new ArgumentException($"unknown flag {flag}; see --help.");
            }
        }
        return o;
    }

    private static DType ParseDType(string value) => value.ToLowerInvariant() switch
    {
        "fp16" or "float16" or "half" => XFormers.Dsl.DType.Float16,
        "bf16" or "bfloat16" => XFormers.Dsl.DType.BFloat16,
        "fp32" or "float32" or "float" => XFormers.Dsl.DType.Float32,
        _ => throw new ArgumentException($"--dtype {value}: use fp16, bf16 or fp32."),
    };
}
