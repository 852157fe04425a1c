using System.IO;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using XFormers.Training;

namespace XFormers.Tests.Training;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("safetensors-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void Round_trip_keeps_names_shapes_bytes_and_metadata()
    {
        string path = Path.Combine(directory, "a.safetensors");
        var tensors = new[]
        {
            SafeTensor.FromFloats("tok_emb.weight", new[] { 1f, -2f, 3.5f, float.Epsilon, 0f, 7f }, 3, 2),
            new SafeTensor("half", "F16", new long[] { 2 }, new byte[] { 0x00, 0x3C, 0x00, 0xC0 }),
            SafeTensor.FromFloats("empty", Array.Empty<float>(), 0, 4),
        };
        SafeTensors.Save(path, tensors, new Dictionary<string, string> { ["step"] = "12", ["note"] = "ünïcode \"quoted\"" });

        var (loaded, metadata) = SafeTensors.Load(path);
        loaded.Keys.ShouldBe(new[] { "tok_emb.weight", "half", "empty" }, ignoreOrder: true);
        loaded["tok_emb.weight"].Shape.ShouldBe(new long[] { 3, 2 });
        loaded["tok_emb.weight"].ToFloats().ShouldBe(new[] { 1f, -2f, 3.5f, float.Epsilon, 0f, 7f });
        loaded["half"].Data.ShouldBe(tensors[1].Data);
        loaded["empty"].Shape.ShouldBe(new long[] { 0, 4 });
        metadata["step"].ShouldBe("12");
        metadata["note"].ShouldBe("ünïcode \"quoted\"");
        Directory.GetFiles(directory).ShouldBe(new[] { path }, "the temporary file was renamed over the target");
    }

    [Fact]
    public void Header_is_little_endian_length_then_space_padded_json_with_contiguous_offsets()
    {
        string path = Path.Combine(directory, "b.safetensors");
        SafeTensors.Save(path, new[]
        {
            SafeTensor.FromFloats("a", new[] { 1f, 2f, 3f }, 3),
            SafeTensor.FromFloats("b", new[] { 4f }, 1, 1),
        }, new Dictionary<string, string> { ["format"] = "pt" });

        var bytes = File.ReadAllBytes(path);
        ulong length = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        (length % 8).ShouldBe(0UL);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)length);
        header.TrimEnd(' ').Length.ShouldBeLessThan(header.Length + 1);
        using var json = JsonDocument.Parse(header);
        json.RootElement.GetProperty("__metadata__").GetProperty("format").GetString().ShouldBe("pt");
        var a = json.RootElement.GetProperty("a");
        a.GetProperty("dtype").GetString().ShouldBe("F32");
        a.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ShouldBe(new long[] { 3 });
        a.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ShouldBe(new long[] { 0, 12 });
        json.RootElement.GetProperty("b").GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ShouldBe(new long[] { 12, 16 });
        bytes.Length.ShouldBe(8 + (int)length + 16);
        BitConverter.ToSingle(bytes, 8 + (int)length + 12).ShouldBe(4f);
    }

    [Fact]
    public void Save_rejects_a_size_mismatch_and_keeps_the_old_file()
    {
        string path = Path.Combine(directory, "c.safetensors");
        SafeTensors.Save(path, new[] { SafeTensor.FromFloats("x", new[] { 1f }, 1) });
        Should.Throw<ArgumentException>(() => SafeTensors.Save(path, new[] { SafeTensor.FromFloats("x", new[] { 1f, 2f }, 3) }));
        SafeTensors.Load(path).Tensors["x"].ToFloats().ShouldBe(new[] { 1f });
        Directory.GetFiles(directory).Length.ShouldBe(1);
    }

    [Fact]
    public void Load_rejects_a_truncated_file()
    {
        string path = Path.Combine(directory, "d.safetensors");
        SafeTensors.Save(path, new[] { SafeTensor.FromFloats("x", new float[64], 64) });
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);
        Should.Throw<CheckpointException>(() => SafeTensors.Load(path)).Message.ShouldBe(
            $"{path}: tensor x: data_offsets [0, 256] are not a byte range inside the 246 bytes of data.");
    }
}
