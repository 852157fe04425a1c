using System.IO;
using System.Threading;
using XFormers.Dsl;
using XFormers.Kernels;
using XFormers.Training;

namespace XFormers.Tests.Training;

/// <summary>The whole model: its gradient against finite differences, a short run that learns, resume bit-identical.</summary>
[Collection(CpuCollection.Name)]
public sealed class TinyGptTrainingTests(CpuContextFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    private static readonly TinyGptConfig Tiny = new()
    {
        Vocab = 11, Dim = 32, Layers = 2, Heads = 2, Sequence = 8, Batch = 2, DType = DType.Float32, Steps = 6, LearningRate = 1e-2f,
    };

    /// <summary>The typed parameters sit on the tensors of PyTorch's names (what checkpoints and tinygpt_torch.py read).</summary>
    [Fact]
    public void Typed_parameters_resolve_the_PyTorch_names_once()
    {
        using var store = new ParameterStore<float>(context, Tiny.ParameterLayout());
        var p = new TinyGptParameters<float>(store, Tiny);
        string[] Names(LayerNormParameters<float> ln) => new[] { ln.Weight.Slice.Name, ln.Bias.Slice.Name };
        new[] { p.TokenEmbedding.Slice.Name, p.PositionEmbedding.Slice.Name, p.Head.Slice.Name }.ShouldBe(new[] { "tok_emb.weight", "pos_emb.weight", "head.weight" });
        Names(p.FinalNorm).ShouldBe(new[] { "ln_f.weight", "ln_f.bias" });
        p.Blocks.Count.ShouldBe(Tiny.Layers);
        var block = p.Blocks[1];
        Names(block.Ln1).Concat(new[] { block.Qkv.Slice.Name, block.Proj.Slice.Name }).Concat(Names(block.Ln2)).Concat(new[] { block.W12.Slice.Name, block.W3.Slice.Name })
            .ShouldBe(new[] { "blocks.1.ln1.weight", "blocks.1.ln1.bias", "blocks.1.attn.qkv.weight", "blocks.1.attn.proj.weight", "blocks.1.ln2.weight", "blocks.1.ln2.bias", "blocks.1.mlp.w12.weight", "blocks.1.mlp.w3.weight" });
        block.Ln1.Values.Length.ShouldBe(2 * Tiny.Dim);
        block.Qkv.Weight.Length.ShouldBe(3L * Tiny.Dim * Tiny.Dim);
    }

    [Fact]
    public void Model_gradients_match_finite_differences_of_the_loss()
    {
        using var data = TokenBatch.Counting(context, Tiny.Vocab, Tiny.Seed);
        using var model = new TinyGpt<float, FloatConvert>(context, Tiny, data);
        var store = model.Store;
        // Larger weights than the 0.02 init so every path carries signal the differences can see.
        var parameters = store.Read(store.Params).Select((p, i) => p * 20f + (i % 7 == 0 ? 0.05f : 0f)).ToArray();
        store.Load<FloatConvert>(model.Launcher, parameters);
        model.LossAndGradients(step: 3);
        var grads = store.Read(store.Grads);

        const float h = 1e-2f;
        foreach (var slice in store.Slices)
        {
            // A few coordinates of every parameter tensor, including every layer's attention and SwiGLU weights.
            foreach (long offset in new[] { 0L, slice.Length / 2, slice.Length - 1 })
            {
                long i = slice.Offset + offset;
                float saved = parameters[i];
                parameters[i] = saved + h;
                store.Load<FloatConvert>(model.Launcher, parameters);
                double plus = model.LossAndGradients(3);
                parameters[i] = saved - h;
                store.Load<FloatConvert>(model.Launcher, parameters);
                double minus = model.LossAndGradients(3);
                parameters[i] = saved;
                double numeric = (plus - minus) / (2 * h);
                Math.Abs(grads[i] - numeric).ShouldBeLessThan(2e-3 + 0.03 * Math.Abs(numeric), $"{slice.Name}[{offset}]: analytic {grads[i]}, numeric {numeric}");
            }
        }
        store.Load<FloatConvert>(model.Launcher, parameters);
    }

    [Fact]
    public void Ilgpu_compiled_kernels_on_the_CPU_accelerator_agree_with_the_host_loops()
    {
        var config = Tiny with { Layers = 1, DType = DType.Float16 };
        using var data = TokenBatch.Counting(context, config.Vocab, config.Seed);
        using var host = new TinyGpt<Half, HalfConvert>(context, config, data);
        using var compiled = new TinyGpt<Half, HalfConvert>(context, config, data, ilgpuOnCpu: true);
        host.TrainStep(0, config.LearningRate);
        compiled.TrainStep(0, config.LearningRate);
        // Same math; only LayerNorm's warp reductions add in another order than the host's row loop.
        var (hostLoss, hostAccuracy) = host.ReadMetrics(0, 1)[0];
        var (compiledLoss, compiledAccuracy) = compiled.ReadMetrics(0, 1)[0];
        compiledLoss.ShouldBe(hostLoss, 1e-4f);
        compiledAccuracy.ShouldBe(hostAccuracy);
        var a = host.Store.Read(host.Store.Params);
        var b = compiled.Store.Read(compiled.Store.Params);
        TrainingTestUtil.RelativeError(b, TrainingTestUtil.ToDouble(a)).ShouldBeLessThan(1e-4);
    }

    [Fact]
    public void Seed_task_reaches_99_percent_on_the_CPU()
    {
        var config = new TinyGptConfig { Batch = 2, Steps = 30 };
        using var trainer = new TinyGptTrainer(context, config);
        var history = trainer.Train();
        history.Count.ShouldBe(30);
        history[0].Loss.ShouldBeInRange(3.9f, 4.5f, "about ln 64 at the start");
        history.TakeLast(5).Average(m => m.Accuracy).ShouldBeGreaterThanOrEqualTo(0.99f);
        history[^1].Loss.ShouldBeLessThan(0.2f);
        trainer.Generate(new[] { 5, 6, 7 }, 4, temperature: 0f).ShouldBe(new[] { 8, 9, 10, 11 });
    }

    [Fact]
    public void Resume_from_a_checkpoint_is_bit_identical_to_a_straight_run()
    {
        var config = Tiny with { DType = DType.Float16, Steps = 8 };
        string path = Path.Combine(Path.GetTempPath(), $"tinygpt-resume-{Environment.ProcessId}.safetensors");
        try
        {
            using var straight = new TinyGptTrainer(context, config);
            straight.MetricsInterval = 3;
            straight.Train();

            using (var first = new TinyGptTrainer(context, config))
            {
                first.Train(untilStep: 4);
                first.SaveCheckpoint(path);
            }
            var (stored, metadata) = TinyGptTrainer.ReadCheckpointConfig(path);
            stored.ShouldBe(config);
            metadata["step"].ShouldBe("4");
            using var resumed = new TinyGptTrainer(context, config);
            resumed.LoadCheckpoint(path);
            resumed.Step.ShouldBe(4);
            resumed.Train();

            var a = straight.Model.ReadState();
            var b = resumed.Model.ReadState();
            b.Params.ShouldBe(a.Params);
            b.M.ShouldBe(a.M);
            b.V.ShouldBe(a.V);
            b.Scaler.ShouldBe(a.Scaler);
            resumed.History.Select(m => (m.Loss, m.Accuracy)).ShouldBe(straight.History.Skip(4).Select(m => (m.Loss, m.Accuracy)));

            var (tensors, _) = SafeTensors.Load(path);
            tensors["blocks.1.mlp.w12.weight"].Shape.ShouldBe(new long[] { 2 * 4 * 32, 32 });
            tensors.Keys.ShouldContain("optimizer.exp_avg_sq.head.weight");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Cancellation_stops_after_the_current_step_and_the_checkpoint_resumes_bit_identically()
    {
        var config = Tiny with { DType = DType.Float16, Steps = 9 };
        string path = Path.Combine(Path.GetTempPath(), $"tinygpt-cancel-{Environment.ProcessId}.safetensors");
        try
        {
            using var straight = new TinyGptTrainer(context, config);
            straight.Train();

            using (var interrupted = new TinyGptTrainer(context, config))
            {
                interrupted.MetricsInterval = 1;
                using var cancel = new CancellationTokenSource();
                // Cancelled while step 3 is reported: step 3 is done, step 4 never starts.
                var history = interrupted.Train(onStep: m =>
                {
                    if (m.Step == 3)
                        cancel.Cancel();
                }, cancellationToken: cancel.Token);
                interrupted.Step.ShouldBe(4);
                history.Count.ShouldBe(4);
                interrupted.Train(cancellationToken: cancel.Token);
                interrupted.Step.ShouldBe(4, "a cancelled token runs no step");
                interrupted.SaveCheckpoint(path);
            }

            using var resumed = new TinyGptTrainer(context, config);
            resumed.LoadCheckpoint(path);
            resumed.Step.ShouldBe(4);
            resumed.Train();
            var a = straight.Model.ReadState();
            var b = resumed.Model.ReadState();
            b.Params.ShouldBe(a.Params);
            b.M.ShouldBe(a.M);
            b.V.ShouldBe(a.V);
            b.Scaler.ShouldBe(a.Scaler);
            resumed.History.Select(m => m.Loss).ShouldBe(straight.History.Skip(4).Select(m => m.Loss));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
