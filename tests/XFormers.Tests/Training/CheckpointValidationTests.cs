using System.IO;
using System.Text;
using XFormers.Dsl;
using XFormers.Training;

namespace XFormers.Tests.Training;

/// <summary>
/// Damaged, mismatched or non-finite checkpoints are refused with one <see cref="CheckpointException"/> whose one-line
/// message names the file and the tensor or key, before the model changes; unwritable targets fail before training; a
/// non-finite model never replaces a checkpoint; a killed save's temporary file is cleaned up.
/// </summary>
[Collection(CpuCollection.Name)]
public sealed class CheckpointValidationTests : IDisposable
{
    private static readonly TinyGptConfig Tiny = new()
    {
        Vocab = 11, Dim = 32, Layers = 1, Heads = 2, Sequence = 8, Batch = 2, DType = DType.Float32, Steps = 2, LearningRate = 1e-2f,
    };

    private readonly string directory = Directory.CreateTempSubdirectory("checkpoints-").FullName;
    private readonly TinyGptTrainer trainer;
    private readonly string good;

    public CheckpointValidationTests(CpuContextFixture fixture)
    {
        trainer = new TinyGptTrainer(fixture.Context, Tiny);
        trainer.Train(untilStep: 1);
        good = Path.Combine(directory, "good.safetensors");
        trainer.SaveCheckpoint(good);
    }

    public void Dispose()
    {
        trainer.Dispose();
        Directory.Delete(directory, recursive: true);
    }

    /// <summary>A copy of the good checkpoint with its tensors or metadata edited.</summary>
    private string Edited(Action<List<SafeTensor>, Dictionary<string, string>> edit)
    {
        var (tensors, metadata) = SafeTensors.Load(good);
        var list = tensors.Values.ToList();
        var meta = metadata.ToDictionary(p => p.Key, p => p.Value);
        edit(list, meta);
        string path = Path.Combine(directory, $"edited-{Guid.NewGuid():N}.safetensors");
        SafeTensors.Save(path, list, meta);
        return path;
    }

    private static void Replace(List<SafeTensor> list, string name, Func<SafeTensor, SafeTensor> change)
    {
        int i = list.FindIndex(t => t.Name == name);
        list[i] = change(list[i]);
    }

    public static TheoryData<string, string, string> Damage => new()
    {
        { "transposed shape", "tensor blocks.0.attn.qkv.weight", "has shape [32, 96]; this model needs [96, 32]" },
        { "half dtype", "tensor head.weight", "is F16; this trainer stores F32" },
        { "missing tensor", "tensor ln_f.bias", "is missing" },
        { "extra tensor", "tensor extra.weight", "is not a tensor of this model" },
        { "NaN weight", "tensor tok_emb.weight", "element 3 is NaN; load with allowNonFinite" },
        { "infinite moment", "tensor optimizer.exp_avg.head.weight", "element 0 is Infinity" },
        { "negative second moment", "tensor optimizer.exp_avg_sq.ln_f.weight", "element 1 is -1; a second moment is never negative" },
        { "negative step", "metadata step", "'-5' is not an integer from 0 to 2147483647" },
        { "step not a number", "metadata step", "'five' is not an integer" },
        { "missing format", "metadata format", "is missing; this is not a xformers-dotnet-tinygpt checkpoint" },
        { "other format", "metadata format", "is 'llama', not 'xformers-dotnet-tinygpt'" },
        { "missing scaler", "metadata scaler", "is missing" },
        { "short scaler", "metadata scaler", "'1,2' is not 4 finite numbers" },
        { "zero scale", "metadata scaler", "is not a GradScaler state" },
        { "other model", "metadata", "holds a model of vocab 11, d 32, 1 layers, 4 heads" },
        { "heads zero", "metadata heads", "'0' is not an integer from 1 to 32" },
        { "heads do not divide", "metadata heads", "3 does not divide d = 32" },
        { "learning rate text", "metadata lr", "'fast' is not a finite number" },
        { "unknown dtype", "metadata dtype", "'Float8' is not one of Float32, Float16, BFloat16" },
        { "numeric dtype", "metadata dtype", "'1' is not one of" },
        { "missing vocab", "metadata vocab", "is missing" },
    };

    private string Damaged(string name) => name switch
    {
        "transposed shape" => Edited((l, _) => Replace(l, "blocks.0.attn.qkv.weight", t => t with { Shape = new long[] { 32, 96 } })),
        "half dtype" => Edited((l, _) => Replace(l, "head.weight", t => t with { DType = "F16", Shape = new long[] { 11, 64 } })),
        "missing tensor" => Edited((l, _) => l.RemoveAll(t => t.Name == "ln_f.bias")),
        "extra tensor" => Edited((l, _) => l.Add(SafeTensor.FromFloats("extra.weight", new[] { 1f }, 1))),
        "NaN weight" => Edited((l, _) => Replace(l, "tok_emb.weight", t => WithValue(t, 3, float.NaN))),
        "infinite moment" => Edited((l, _) => Replace(l, "optimizer.exp_avg.head.weight", t => WithValue(t, 0, float.PositiveInfinity))),
        "negative second moment" => Edited((l, _) => Replace(l, "optimizer.exp_avg_sq.ln_f.weight", t => WithValue(t, 1, -1f))),
        "negative step" => Edited((_, m) => m["step"] = "-5"),
        "step not a number" => Edited((_, m) => m["step"] = "five"),
        "missing format" => Edited((_, m) => m.Remove("format")),
        "other format" => Edited((_, m) => m["format"] = "llama"),
        "missing scaler" => Edited((_, m) => m.Remove("scaler")),
        "short scaler" => Edited((_, m) => m["scaler"] = "1,2"),
        "zero scale" => Edited((_, m) => m["scaler"] = "0,0,1,0"),
        "other model" => Edited((_, m) => m["heads"] = "4"),
        "heads zero" => Edited((_, m) => m["heads"] = "0"),
        "heads do not divide" => Edited((_, m) => m["heads"] = "3"),
        "learning rate text" => Edited((_, m) => m["lr"] = "fast"),
        "unknown dtype" => Edited((_, m) => m["dtype"] = "Float8"),
        "numeric dtype" => Edited((_, m) => m["dtype"] = "1"),
        "missing vocab" => Edited((_, m) => m.Remove("vocab")),
        _ => throw new ArgumentException(name),
    };

    private static SafeTensor WithValue(SafeTensor t, int index, float value)
    {
        var values = t.ToFloats();
        values[index] = value;
        return SafeTensor.FromFloats(t.Name, values, t.Shape);
    }

    [Theory]
    [MemberData(nameof(Damage))]
    public void DamagedCheckpointIsRefusedBeforeTheModelChanges(string damage, string subject, string problem)
    {
        string path = Damaged(damage);
        var before = trainer.Model.ReadState();
        int step = trainer.Step;

        var ex = Should.Throw<CheckpointException>(() => trainer.LoadCheckpoint(path));

        ex.Path.ShouldBe(path);
        ex.Subject.ShouldBe(subject);
        ex.Message.ShouldStartWith($"{path}: {subject}: ");
        ex.Message.ShouldContain(problem);
        ex.Message.ShouldNotContain("\n");
        trainer.Step.ShouldBe(step);
        trainer.Model.ReadState().Params.ShouldBe(before.Params);
    }

    [Fact]
    public void NonFiniteWeightsLoadWhenAllowed()
    {
        string path = Damaged("NaN weight");
        trainer.LoadCheckpoint(path, allowNonFinite: true);
        float.IsNaN(trainer.Model.ReadState().Params[3]).ShouldBeTrue();
        trainer.LoadCheckpoint(good);
        trainer.Step.ShouldBe(1);
    }

    [Fact]
    public void NegativeStepIsRefusedBeforeItIndexesAnything()
    {
        var ex = Should.Throw<ArgumentOutOfRangeException>(() => trainer.Model.TrainStep(-5, 1e-2f));
        ex.ParamName.ShouldBe("step");
        ex.Message.ShouldContain("-5");
    }

    [Fact]
    public void ConfigReaderNamesTheBadKey()
    {
        string path = Damaged("negative step");
        TinyGptTrainer.ReadCheckpointConfig(path).Config.ShouldBe(Tiny);
        var ex = Should.Throw<CheckpointException>(() => TinyGptTrainer.ReadCheckpointConfig(Damaged("heads zero")));
        ex.Subject.ShouldBe("metadata heads");
    }

    public static TheoryData<string, string, string> BrokenFiles => new()
    {
        { "not JSON", "header", "is not valid JSON" },
        { "header past the end", "header", "runs past the end of the file" },
        { "too short", "file", "too short for a safetensors file" },
        { "shape disagrees with data", "tensor x", "F32 [3] needs 12 bytes; its data_offsets span 16" },
        { "overlapping ranges", "tensor y", "overlap another tensor's" },
        { "hole", "tensor y", "leaving a hole after 8" },
        { "offsets past the data", "tensor x", "are not a byte range inside the 16 bytes of data" },
        { "unknown dtype", "tensor x", "dtype 'F8' is not a safetensors dtype" },
        { "negative size", "tensor x", "has a negative size" },
        { "metadata number", "metadata step", "is a JSON Number; safetensors metadata values are strings" },
        { "entry not an object", "tensor x", "is a JSON Array, not an object" },
        { "data beyond the tensors", "file", "the header describes 8 bytes of data; the file holds 16" },
    };

    [Theory]
    [MemberData(nameof(BrokenFiles))]
    public void BrokenFileIsNamedWithItsTensorOrKey(string broken, string subject, string problem)
    {
        string path = Path.Combine(directory, "broken.safetensors");
        string header = broken switch
        {
            "not JSON" => "{\"x\": {\"dtype\": \"F32\",",
            "shape disagrees with data" => "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}",
            "overlapping ranges" => "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            "hole" => "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
            "offsets past the data" => "{\"x\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}",
            "unknown dtype" => "{\"x\":{\"dtype\":\"F8\",\"shape\":[16],\"data_offsets\":[0,16]}}",
            "negative size" => "{\"x\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}",
            "metadata number" => "{\"__metadata__\":{\"step\":5},\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
            "entry not an object" => "{\"x\":[1,2]}",
            "data beyond the tensors" => "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            _ => "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
        };
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + 16];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), (ulong)json.Length + (broken == "header past the end" ? 100UL : 0UL));
        json.CopyTo(bytes, 8);
        File.WriteAllBytes(path, broken == "too short" ? bytes[..5] : bytes);

        var ex = Should.Throw<CheckpointException>(() => SafeTensors.Load(path));
        ex.Message.ShouldStartWith($"{path}: {subject}: ");
        ex.Message.ShouldContain(problem);
        ex.Message.ShouldNotContain("\n");
    }

    [Fact]
    public void DirectoryOrMissingFileIsNamed()
    {
        Should.Throw<CheckpointException>(() => SafeTensors.Load(directory)).Message.ShouldBe($"{directory}: file: is a directory; give the path of a .safetensors file.");
        string missing = Path.Combine(directory, "missing.safetensors");
        Should.Throw<CheckpointException>(() => trainer.LoadCheckpoint(missing)).Message.ShouldStartWith($"{missing}: file: does not exist");
        Should.Throw<CheckpointException>(() => trainer.SaveCheckpoint(directory)).Message.ShouldStartWith($"{directory}: file: is a directory");
    }

    [Fact]
    public void NonFiniteModelNeverReplacesACheckpoint()
    {
        var state = trainer.Model.ReadState();
        var poisoned = state.Params.ToArray();
        poisoned[5] = float.PositiveInfinity;
        string before = Convert.ToHexString(File.ReadAllBytes(good));
        trainer.Model.WriteState(state with { Params = poisoned });
        try
        {
            var ex = Should.Throw<CheckpointException>(() => trainer.SaveCheckpoint(good));
            ex.Message.ShouldStartWith($"{good}: tensor tok_emb.weight: element 5 is Infinity");
            Convert.ToHexString(File.ReadAllBytes(good)).ShouldBe(before);
            Directory.GetFiles(directory).ShouldBe(new[] { good });
        }
        finally
        {
            trainer.Model.WriteState(state);
        }
    }

    [Fact]
    public void UnwritableTargetFailsBeforeTraining()
    {
        using var fresh = new TinyGptTrainer(trainer.Context, Tiny) { CheckpointPath = directory };
        var ex = Should.Throw<CheckpointException>(() => fresh.Train());
        ex.Message.ShouldContain("is a directory");
        fresh.Step.ShouldBe(0);

        fresh.CheckpointPath = Path.Combine(directory, "no-such-folder", "run.safetensors");
        Should.Throw<CheckpointException>(() => fresh.Train()).Message.ShouldContain("does not exist");
        fresh.Step.ShouldBe(0);
    }

    [Fact]
    public void StaleTempFileIsRemovedAndNeverReplacesTheCheckpoint()
    {
        // What a save killed before its rename leaves: a partial file beside the good one, named by a process that is gone.
        string stale = Path.Combine(directory, ".good.safetensors.2147483000.tmp");
        File.WriteAllBytes(stale, new byte[] { 1, 2, 3 });
        string before = Convert.ToHexString(File.ReadAllBytes(good));

        trainer.CheckpointPath = good;
        trainer.Train(untilStep: 1);

        File.Exists(stale).ShouldBeFalse();
        Convert.ToHexString(File.ReadAllBytes(good)).ShouldBe(before);
        trainer.LoadCheckpoint(good);
        trainer.Step.ShouldBe(1);
    }
}
