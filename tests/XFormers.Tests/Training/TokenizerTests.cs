using System.Buffers.Binary;
using System.IO;
using XFormers.Training;

namespace XFormers.Tests.Training;

/// <summary>The text tokenizers, the token file (llm.c's layout, memory-mapped) and the batches made from it.</summary>
[Collection(CpuCollection.Name)]
public sealed class TokenizerTests(CpuContextFixture fixture) : IDisposable
{
    private const string Text = "Hello world! The GPT-2 tokenizer keeps  spaces,\ttabs,\nnewlines, ünïcödé → ≥ ∘ and 日本語 exactly.";
    private readonly XFormersContext context = fixture.Context;
    private readonly string folder = Directory.CreateTempSubdirectory("xformers-tokens-").FullName;

    [Fact]
    public void Gpt2_gives_the_reference_ids_and_round_trips_any_text()
    {
        var gpt2 = TextTokenizer.Create(TextTokenizer.Gpt2Name);
        gpt2.VocabSize.ShouldBe(50257);
        // tiktoken's ids for GPT-2: "Hello" 15496, " world" 995.
        gpt2.Encode("Hello world").ShouldBe(new[] { 15496, 995 });
        var ids = gpt2.Encode(Text);
        ids.Length.ShouldBeLessThan(Text.Length);
        ids.ShouldAllBe(id => id >= 0 && id < gpt2.VocabSize);
        gpt2.Decode(ids).ShouldBe(Text);
    }

    [Fact]
    public void Characters_round_trip_and_drop_unknown_characters()
    {
        var chars = CharacterTokenizer.FromText(Text);
        chars.VocabSize.ShouldBe(Text.Distinct().Count());
        chars.Decode(chars.Encode(Text)).ShouldBe(Text);
        var again = TextTokenizer.Create(TextTokenizer.CharacterName, chars.Table);
        again.Encode(Text).ShouldBe(chars.Encode(Text));
        chars.Decode(chars.Encode("Hq!")).ShouldBe("H!");
        Should.Throw<ArgumentException>(() => TextTokenizer.Create("bpe")).Message.ShouldContain("gpt2");
    }

    [Theory]
    [InlineData(TextTokenizer.Gpt2Name)]
    [InlineData(TextTokenizer.CharacterName)]
    public void Prepared_token_file_loads_the_same_tokens_and_tokenizer(string name)
    {
        var tokenizer = name == TextTokenizer.Gpt2Name ? TextTokenizer.Create(name) : CharacterTokenizer.FromText(Text);
        var ids = tokenizer.Encode(Text);
        string path = Path.Combine(folder, name + ".bin");
        TokenFile.Write(path, ids, tokenizer);

        TokenFile.IsTokenFile(path).ShouldBeTrue();
        using var file = TokenFile.Open(path);
        file.Count.ShouldBe(ids.Length);
        file.VocabSize.ShouldBe(tokenizer.VocabSize);
        file.Tokenizer.Name.ShouldBe(name);
        file.Tokenizer.Table.ShouldBe(tokenizer.Table);
        file.Tokens(0, ids.Length).ToArray().Select(t => (int)t).ShouldBe(ids);
        file.Tokenizer.Decode(file.Tokens(0, ids.Length).ToArray().Select(t => (int)t)).ShouldBe(Text);
    }

    [Fact]
    public void A_file_in_llm_c_layout_reads_as_gpt2()
    {
        // llm.c's header: magic, version, count, the rest zero; then uint16 tokens.
        var ids = new ushort[] { 15496, 995, 50256 };
        var bytes = new byte[TokenFile.HeaderBytes + 2 * ids.Length];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, TokenFile.Magic);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), 1);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), ids.Length);
        for (int i = 0; i < ids.Length; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(TokenFile.HeaderBytes + 2 * i), ids[i]);
        string path = Path.Combine(folder, "llmc.bin");
        File.WriteAllBytes(path, bytes);
        using var file = TokenFile.Open(path);
        file.Tokenizer.Name.ShouldBe(TextTokenizer.Gpt2Name);
        file.VocabSize.ShouldBe(50257);
        file.Tokenizer.Decode(file.Tokens(0, 3).ToArray().Select(t => (int)t)).ShouldBe("Hello world<|endoftext|>");
    }

    [Fact]
    public void Bad_token_files_are_refused_with_the_reason()
    {
        string text = Path.Combine(folder, "text.bin");
        File.WriteAllText(text, new string('x', 2000));
        TokenFile.IsTokenFile(text).ShouldBeFalse();
        Should.Throw<InvalidDataException>(() => TokenFile.Open(text)).Message.ShouldContain("not a token file");

        string path = Path.Combine(folder, "short.bin");
        TokenFile.Write(path, new[] { 1, 2, 3, 4 }, Gpt2Tokenizer.Instance);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length - 2).ToArray());
        Should.Throw<InvalidDataException>(() => TokenFile.Open(path)).Message.ShouldContain("4 tokens");
        Should.Throw<ArgumentException>(() => TokenFile.Write(path, new[] { 3, 70000 }, Gpt2Tokenizer.Instance)).Message.ShouldContain("token 1 is 70000");
    }

    [Fact]
    public void Batches_from_the_mapped_file_are_windows_of_the_token_stream()
    {
        var tokenizer = CharacterTokenizer.FromText(Text);
        var ids = tokenizer.Encode(Text);
        string path = Path.Combine(folder, "batches.bin");
        TokenFile.Write(path, ids, tokenizer);
        using var file = TokenFile.Open(path);
        Should.Throw<ArgumentException>(() => TokenBatch.FromTokenFile(context, tokenizer.VocabSize - 1, file, seed: 5));
        using var batch = TokenBatch.FromTokenFile(context, tokenizer.VocabSize, file, seed: 5);
        batch.TextLength.ShouldBe(ids.Length);

        const int B = 3, T = 7, Step = 4;
        using var inputs = context.Accelerator.Allocate1D<int>(B * T);
        using var targets = context.Accelerator.Allocate1D<int>(B * T);
        batch.Make(new DeviceLauncher(context), Step, B, T, inputs.View, targets.View);
        var x = TrainingTestUtil.Download(context, inputs);
        var y = TrainingTestUtil.Download(context, targets);
        for (int b = 0; b < B; b++)
        {
            int start = TokenBatch.Start(5, Step, b, ids.Length - T);
            x.Skip(b * T).Take(T).ShouldBe(ids.Skip(start).Take(T));
            y.Skip(b * T).Take(T).ShouldBe(ids.Skip(start + 1).Take(T));
        }
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);
}
