using System.Globalization;
using Spectre.Console;
using XFormers.Dsl;
using XFormers.Training;

namespace XFormers.Tutorial;

/// <summary>The causal attention the tutorial's TinyGPT trains with, declared with the DSL.</summary>
internal static partial class TutorialVariants
{
    [Attention(Mask = MaskKind.Causal, HeadDim = 16, DType = DType.Float16)]
    internal static partial AttentionKernel CausalHead16();
}

public sealed partial class Tutorial
{
    // 7. Training a small GPT end to end on the counting task, with the generated causal attention, SwiGLU
    //    and fp16 compute with dynamic loss scaling.
    private void Training()
    {
        Heading(7, "Training TinyGPT (generated causal attention, SwiGLU, fp16 + loss scaling)");
        var config = new TinyGptConfig();
        if (OnCpu)
        {
            Reduced($"batch {config.Batch} → 2 and steps {config.Steps} → 200, so 2 cores finish in a minute or two");
            config = config with { Batch = 2, Steps = 200 };
        }
        console.WriteLine($"model: {config}");
        var data = TokenBatch.Counting(context, config.Vocab, config.Seed);
        Compile(backward: true, TutorialVariants.CausalHead16());
        using var trainer = new TinyGptTrainer(context, config, data, TutorialVariants.CausalHead16());
        console.WriteLine($"attention: {trainer.Model.Attention.Variant.Name}; GEMM: {trainer.Model.Gemm.Description}");
        int every = config.Steps / 10;
        trainer.Train(onStep: m =>
        {
            if (m.Step % every == 0 || m.Step == config.Steps - 1)
                console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {m.Step,4} | loss {m.Loss:F4} | acc {m.Accuracy:F3}"));
        });
        var final = trainer.History[^1];
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"final: loss {final.Loss:F4}, next-token accuracy {final.Accuracy:P1} after {trainer.History.Count} steps ({final.Seconds:F1} s)"));
    }
}
