using System.IO;
using System.Threading;
using ILGPU;
using ILGPU.Runtime;
using XFormers.Dsl;
using XFormers.Kernels;
using XFormers.Training;

namespace XFormers.Tests.Training;

/// <summary>
/// Data parallelism on the CPU: the gradient buckets, where the backward starts them, one rank through the communicator
/// path, two ranks simulated by threads against one process on the same global batch, checkpoints across rank counts,
/// and the NCCL binding's answers where no GPU (or no libnccl) is present.
/// </summary>
[Collection(CpuCollection.Name)]
public sealed class DataParallelTests(CpuContextFixture fixture)
{
    private readonly XFormersContext context = fixture.Context;

    private static readonly TinyGptConfig Tiny = new()
    {
        Vocab = 11, Dim = 32, Layers = 2, Heads = 2, Sequence = 8, Batch = 4, DType = DType.Float32, Steps = 6, LearningRate = 1e-2f,
    };

    [Theory]
    [InlineData(1L)]
    [InlineData(3000L)]
    [InlineData(1L << 30)]
    public void Buckets_are_whole_parameters_cut_from_the_end(long bucketElements)
    {
        using var store = new ParameterStore<float>(context, Tiny.ParameterLayout());
        var buckets = new GradientBuckets(new SingleRankCommunicator(), store.Grads, store.Slices, bucketElements).Buckets;
        var starts = store.Slices.Select(s => s.Offset).ToHashSet();
        long end = store.Count;
        foreach (var bucket in buckets)
        {
            (bucket.Offset + bucket.Length).ShouldBe(end, "buckets are contiguous, from the end of the buffer");
            starts.ShouldContain(bucket.Offset, "a bucket starts at a parameter");
            if (bucket.Offset > 0)
                bucket.Length.ShouldBeGreaterThanOrEqualTo(bucketElements);
            end = bucket.Offset;
        }
        end.ShouldBe(0);
        buckets[0].Last.ShouldBe("head.weight");
        buckets[^1].First.ShouldBe("tok_emb.weight");
        if (bucketElements == 1)
            buckets.Count.ShouldBe(store.Slices.Count);
        if (bucketElements == 1L << 30)
            buckets.Count.ShouldBe(1);
    }

    /// <summary>
    /// Each bucket starts once its gradients are final (what it sends equals the gradient after the whole backward), in
    /// the backward's order, and the first ones start before the backward ends (the embedding's gradient still zero).
    /// </summary>
    [Fact]
    public void The_backward_starts_each_bucket_when_its_gradients_are_final()
    {
        var recorder = new Recorder();
        using var data = TokenBatch.Counting(context, Tiny.Vocab, Tiny.Seed);
        using var model = new TinyGpt<float, FloatConvert>(context, Tiny, data, communicator: recorder, bucketElements: 1);
        var store = model.Store;
        recorder.Grads = store.Grads;
        model.LossAndGradients(step: 2);
        var final = store.Read(store.Grads);

        var buckets = model.Buckets!.Buckets;
        recorder.Sent.Count.ShouldBe(buckets.Count);
        var embedding = store.Slices.Single(s => s.Name == "tok_emb.weight");
        for (int i = 0; i < buckets.Count; i++)
        {
            var (offset, sent, whole) = recorder.Sent[i];
            offset.ShouldBe(buckets[i].Offset, "started in the backward's order");
            sent.ShouldBe(final.AsSpan((int)buckets[i].Offset, (int)buckets[i].Length).ToArray(), $"bucket {buckets[i].First}: final when started");
            if (i == 0)
                whole.AsSpan((int)embedding.Offset, (int)embedding.Length).ToArray().ShouldAllBe(g => g == 0f, "the head's bucket starts before the embedding's backward");
        }
        recorder.Waits.ShouldBe(1);
    }

    [Fact]
    public void One_rank_through_the_communicator_path_trains_bit_identically()
    {
        var config = Tiny with { DType = DType.Float16 };
        using var plain = new TinyGptTrainer(context, config);
        using var ranked = new TinyGptTrainer(context, config, communicator: new SingleRankCommunicator(), bucketElements: 2000);
        plain.Train(untilStep: 4);
        ranked.Train(untilStep: 4);
        ranked.History.Select(m => m.Loss).ShouldBe(plain.History.Select(m => m.Loss));
        ranked.Model.ReadState().Params.ShouldBe(plain.Model.ReadState().Params);
    }

    /// <summary>Two ranks of half the batch each: gradients averaged to the one-process gradients, the same loss curve, identical replicas.</summary>
    [Fact]
    public void Two_ranks_give_the_gradients_and_loss_curve_of_one_process()
    {
        using var single = new TinyGpt<float, FloatConvert>(context, Tiny, TokenBatch.Counting(context, Tiny.Vocab, Tiny.Seed));
        single.LossAndGradients(step: 1);
        var expected = single.Store.Read(single.Store.Grads);
        using var reference = new TinyGptTrainer(context, Tiny);
        reference.Train();

        var ranks = OnRanks(2, (rank, communicator, rankContext) =>
        {
            var local = Tiny with { Batch = Tiny.Batch / 2 };
            using (var model = new TinyGpt<float, FloatConvert>(rankContext, local, TokenBatch.Counting(rankContext, Tiny.Vocab, Tiny.Seed), communicator: communicator, bucketElements: 3000))
            {
                model.LossAndGradients(step: 1);
                var grads = model.Store.Read(model.Store.Grads);
                using var trainer = new TinyGptTrainer(rankContext, Tiny, communicator: communicator, bucketElements: 3000);
                trainer.Train();
                return (Grads: grads, Losses: trainer.History.Select(m => m.Loss).ToArray(), Params: trainer.Model.ReadState().Params);
            }
        });

        ranks[1].Grads.ShouldBe(ranks[0].Grads, "every rank holds the same average");
        TrainingTestUtil.RelativeError(ranks[0].Grads, TrainingTestUtil.ToDouble(expected)).ShouldBeLessThan(1e-5);
        ranks[1].Params.ShouldBe(ranks[0].Params, "the replicas stay identical");
        var losses = reference.History.Select(m => m.Loss).ToArray();
        for (int s = 0; s < losses.Length; s++)
            ranks[0].Losses[s].ShouldBe(losses[s], 1e-5 * Math.Abs(losses[s]), $"step {s}");
        TrainingTestUtil.RelativeError(ranks[0].Params, TrainingTestUtil.ToDouble(reference.Model.ReadState().Params)).ShouldBeLessThan(1e-5);
    }

    /// <summary>A checkpoint holds the global batch: one written with one rank count continues on another as the straight run goes.</summary>
    [Theory]
    [InlineData(1, 2)]
    [InlineData(2, 1)]
    public void Checkpoints_resume_across_rank_counts(int before, int after)
    {
        string path = Path.Combine(Path.GetTempPath(), $"xformers-dp-{Guid.NewGuid():N}.safetensors");
        try
        {
            using var straight = new TinyGptTrainer(context, Tiny);
            straight.Train();

            RunRanks(before, (trainer, rank) =>
            {
                trainer.Train(untilStep: 3);
                if (rank == 0)
                    trainer.SaveCheckpoint(path);
            });
            var continued = RunRanks(after, (trainer, _) =>
            {
                trainer.LoadCheckpoint(path);
                trainer.Step.ShouldBe(3);
                trainer.Train();
            });
            var expected = straight.History.Skip(3).Select(m => m.Loss).ToArray();
            for (int s = 0; s < expected.Length; s++)
                continued.Losses[s].ShouldBe(expected[s], 1e-5 * Math.Abs(expected[s]), $"step {3 + s}");
            TrainingTestUtil.RelativeError(continued.Params, TrainingTestUtil.ToDouble(straight.Model.ReadState().Params)).ShouldBeLessThan(1e-5);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Nccl_binding_without_a_GPU_says_why()
    {
        Nccl.ErrorString(Nccl.Result.InvalidArgument).ShouldContain("invalid argument");
        Should.Throw<InvalidOperationException>(() => Nccl.Check(Nccl.Result.RemoteError, "ncclAllReduce")).Message.ShouldStartWith("ncclAllReduce failed:");
        Should.Throw<InvalidOperationException>(() => new NcclCommunicator(context, 0, 1, new string('0', 2 * Nccl.UniqueIdBytes)))
            .Message.ShouldContain("needs a CUDA context");
        Should.Throw<ArgumentException>(() => new NcclCommunicator(context, 0, 1, "abc"));
        Should.Throw<ArgumentOutOfRangeException>(() => new NcclCommunicator(context, 2, 2, new string('0', 2 * Nccl.UniqueIdBytes)));
        if (!Nccl.TryLoad())
        {
            Nccl.Failure!.ShouldContain("libnccl.so.2");
            Console.WriteLine($"NCCL one-rank check skipped: {Nccl.Failure}");
            return;
        }
        // With libnccl present (a GPU machine): the unique id is 128 bytes of hex and the version is 2.x.
        Nccl.NewUniqueId().Length.ShouldBe(2 * Nccl.UniqueIdBytes);
        Nccl.Version().ShouldStartWith("2.");
    }

    [Fact]
    public void The_launcher_hands_each_rank_its_place_and_one_GPU()
    {
        string id = new('a', 2 * Nccl.UniqueIdBytes);
        var info = RankLauncher.StartInfo("/opt/tinygpt", new[] { "--gpus", "2", "--steps", "10" }, 1, 2, id);
        info.FileName.ShouldBe("/opt/tinygpt");
        info.ArgumentList.ShouldBe(new[] { "--gpus", "2", "--steps", "10" });
        info.Environment["CUDA_VISIBLE_DEVICES"].ShouldBe("1");
        var rank = RankEnvironment.From(name => info.Environment.TryGetValue(name, out var v) ? v : null)!;
        rank.ShouldBe(new RankEnvironment(1, 2, 1, id));
        // A narrowed CUDA_VISIBLE_DEVICES is kept: rank r gets its r-th entry.
        RankLauncher.StartInfo("/opt/tinygpt", Array.Empty<string>(), 1, 2, id, new[] { "4", "6" }).Environment["CUDA_VISIBLE_DEVICES"].ShouldBe("6");

        RankEnvironment.From(_ => null).ShouldBeNull("not started as a rank");
        Should.Throw<ArgumentException>(() => RankEnvironment.From(n => n == "WORLD_SIZE" ? "2" : n == "RANK" ? "2" : null)).Message.ShouldContain("RANK=2");
        Should.Throw<ArgumentException>(() => RankEnvironment.From(n => n == "WORLD_SIZE" ? "2" : n == "RANK" ? "0" : null)).Message.ShouldContain("XFORMERS_NCCL_ID");
        Should.Throw<ArgumentException>(() => new TinyGptTrainer(context, Tiny with { Batch = 3 }, communicator: InProcessGroup.Create(2)[0])).Message.ShouldContain("does not split evenly");
    }

    [Fact]
    public void When_one_rank_fails_the_launcher_stops_the_others_and_returns_its_code()
    {
        // Rank 1 fails at once; rank 0 would wait a minute (as a rank blocked in NCCL on a dead peer would, forever).
        var starts = Enumerable.Range(0, 2).Select(rank =>
            RankLauncher.StartInfo("sh", new[] { "-c", "if [ \"$RANK\" = 1 ]; then exit 3; fi; sleep 60" }, rank, 2, "id")).ToArray();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        RankLauncher.Run(starts).ShouldBe(3);
        clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(30));
        var clean = Enumerable.Range(0, 2).Select(rank => RankLauncher.StartInfo("sh", new[] { "-c", "test \"$WORLD_SIZE\" = 2" }, rank, 2, "id")).ToArray();
        RankLauncher.Run(clean).ShouldBe(0);
    }

    /// <summary>Runs <paramref name="world"/> ranks of a trainer (global batch <see cref="Tiny"/>'s) in threads; rank 0's losses and parameters.</summary>
    private static (float[] Losses, float[] Params) RunRanks(int world, Action<TinyGptTrainer, int> body)
    {
        var results = OnRanks(world, (rank, communicator, rankContext) =>
        {
            using var trainer = new TinyGptTrainer(rankContext, Tiny, communicator: world > 1 ? communicator : null);
            body(trainer, rank);
            return (trainer.History.Select(m => m.Loss).ToArray(), trainer.Model.ReadState().Params);
        });
        return results[0];
    }

    /// <summary>Runs <paramref name="body"/> as <paramref name="world"/> ranks, each on a thread with a CPU context of its own.</summary>
    private static T[] OnRanks<T>(int world, Func<int, ICommunicator, XFormersContext, T> body)
    {
        var communicators = InProcessGroup.Create(world);
        var results = new T[world];
        var errors = new Exception?[world];
        var threads = Enumerable.Range(0, world).Select(rank => new Thread(() =>
        {
            try
            {
                using var rankContext = XFormersContext.CreateCpu(parallelGroups: 1);
                results[rank] = body(rank, communicators[rank], rankContext);
            }
            catch (Exception e)
            {
                errors[rank] = e;
            }
        }, 16 << 20)).ToArray();
        foreach (var thread in threads)
            thread.Start();
        foreach (var thread in threads)
            thread.Join();
        var failed = errors.Where(e => e is not null).ToArray();
        if (failed.Length > 0)
            throw new AggregateException(failed!);
        return results;
    }

    /// <summary>One rank that records what each average was handed, and the whole gradient buffer at that moment.</summary>
    private sealed class Recorder : ICommunicator
    {
        public List<(long Offset, float[] Sent, float[] Whole)> Sent { get; } = new();

        public int Waits { get; private set; }

        /// <summary>The model's gradient buffer (set once the model exists).</summary>
        public ArrayView<float> Grads { get; set; }

        public int Rank => 0;

        public int WorldSize => 1;

        public void StartAverage(DeviceLauncher launcher, ArrayView<float> data)
        {
            launcher.Synchronize();
            var sent = new float[data.Length];
            data.CopyToCPU(sent);
            var whole = new float[Grads.Length];
            Grads.CopyToCPU(whole);
            long offset = (data.LoadEffectiveAddressAsPtr() - Grads.LoadEffectiveAddressAsPtr()) / sizeof(float);
            Sent.Add((offset, sent, whole));
        }

        public void WaitAll(DeviceLauncher launcher) => Waits++;

        public void Dispose()
        {
        }
    }
}
