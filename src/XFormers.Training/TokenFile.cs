using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.MemoryMappedFiles;
using System.Text;

namespace XFormers.Training
{
    /// <summary>
    /// A tokenized text on disk, read through a memory map. The layout is llm.c's <c>.bin</c>: a header of 256
    /// little-endian int32 (magic 20240520, version 1, token count), then the tokens as uint16, so llm.c's prepared
    /// files (GPT-2 ids) open as they are. Slots llm.c leaves zero say which tokenizer wrote the file: [3] the vocabulary
    /// size, [4] the tokenizer (0 not said, read as GPT-2; 1 GPT-2; 2 characters), [5] the byte length of the
    /// character table, stored in UTF-8 after the tokens.
    /// </summary>
    public sealed unsafe class TokenFile : IDisposable
    {
        public const int Magic = 20240520;
        public const int Version = 1;
        public const int HeaderInts = 256;
        public const int HeaderBytes = HeaderInts * sizeof(int);

        private readonly MemoryMappedFile map;
        private readonly MemoryMappedViewAccessor view;
        private readonly byte* pointer;

        private TokenFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* pointer, long length)
        {
            Path = path;
            this.map = map;
            this.view = view;
            this.pointer = pointer;
            int Slot(int i) => BinaryPrimitives.ReadInt32LittleEndian(new ReadOnlySpan<byte>(pointer + 4 * i, 4));
            if (Slot(0) != Magic)
                throw new InvalidDataException($"{path}: not a token file (magic {Slot(0)}, expected {Magic}).");
            if (Slot(1) != Version)
                throw new InvalidDataException($"{path}: token file version {Slot(1)}; this reader knows version {Version} (uint16 tokens).");
            Count = Slot(2);
            int tableBytes = Slot(5);
            if (Count < 0 || tableBytes < 0 || HeaderBytes + 2L * Count + tableBytes > length)
                throw new InvalidDataException($"{path}: the header says {Count} tokens and a {tableBytes}-byte table; the file has {length} bytes.");
            Tokenizer = Slot(4) switch
            {
                0 or 1 => TextTokenizer.Create(TextTokenizer.Gpt2Name),
                2 => TextTokenizer.Create(TextTokenizer.CharacterName, Encoding.UTF8.GetString(pointer + HeaderBytes + 2L * Count, tableBytes)),
                int kind => throw new InvalidDataException($"{path}: tokenizer kind {kind} is not 0, 1 (GPT-2) or 2 (characters)."),
            };
            VocabSize = Slot(3) > 0 ? Slot(3) : Tokenizer.VocabSize;
        }

        public string Path { get; }

        /// <summary>Number of tokens.</summary>
        public long Count { get; }

        /// <summary>Vocabulary size of the tokenizer that wrote the file (every token is below it).</summary>
        public int VocabSize { get; }

        /// <summary>The tokenizer that wrote the file.</summary>
        public TextTokenizer Tokenizer { get; }

        /// <summary>The tokens, straight from the map (no copy).</summary>
        public ReadOnlySpan<ushort> Tokens(long start, int count)
        {
            if (start < 0 || count < 0 || start + count > Count)
                throw new ArgumentOutOfRangeException(nameof(start), $"tokens [{start}, {start + count}) of {Count}.");
            return new ReadOnlySpan<ushort>(pointer + HeaderBytes + 2 * start, count);
        }

        /// <summary>Memory-maps a token file (read only) and checks its header.</summary>
        public static TokenFile Open(string path)
        {
            ArgumentException.ThrowIfNullOrEmpty(path);
            long length = new FileInfo(path).Length;
            if (length < HeaderBytes)
                throw new InvalidDataException($"{path}: {length} bytes, shorter than a token file's {HeaderBytes}-byte header.");
            var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            MemoryMappedViewAccessor? view = null;
            try
            {
                view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
                byte* pointer = null;
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
                try
                {
                    return new TokenFile(path, map, view, pointer + view.PointerOffset, length);
                }
                catch
                {
                    view.SafeMemoryMappedViewHandle.ReleasePointer();
                    throw;
                }
            }
            catch
            {
                view?.Dispose();
                map.Dispose();
                throw;
            }
        }

        /// <summary>True when the file starts with a token file's magic number.</summary>
        public static bool IsTokenFile(string path)
        {
            using var stream = File.OpenRead(path);
            Span<byte> first = stackalloc byte[4];
            return stream.ReadAtLeast(first, 4, throwOnEndOfStream: false) == 4 && BinaryPrimitives.ReadInt32LittleEndian(first) == Magic;
        }

        /// <summary>Writes <paramref name="tokens"/> (each in [0, vocabulary)) and what makes <paramref name="tokenizer"/> again, atomically.</summary>
        public static void Write(string path, ReadOnlySpan<int> tokens, TextTokenizer tokenizer)
        {
            ArgumentException.ThrowIfNullOrEmpty(path);
            ArgumentNullException.ThrowIfNull(tokenizer);
            if (tokenizer.VocabSize > ushort.MaxValue + 1)
                throw new ArgumentException($"a vocabulary of {tokenizer.VocabSize} does not fit the file's uint16 tokens.", nameof(tokenizer));
            byte[] table = tokenizer.Table is string characters ? Encoding.UTF8.GetBytes(characters) : Array.Empty<byte>();
            var header = new byte[HeaderBytes];
            void Slot(int i, int value) => BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4 * i), value);
            Slot(0, Magic);
            Slot(1, Version);
            Slot(2, tokens.Length);
            Slot(3, tokenizer.VocabSize);
            Slot(4, tokenizer.Name == TextTokenizer.Gpt2Name ? 1 : 2);
            Slot(5, table.Length);
            var body = new byte[2 * tokens.Length];
            for (int i = 0; i < tokens.Length; i++)
            {
                if ((uint)tokens[i] >= (uint)tokenizer.VocabSize)
                    throw new ArgumentException($"token {i} is {tokens[i]}, outside the vocabulary of {tokenizer.VocabSize}.", nameof(tokens));
                BinaryPrimitives.WriteUInt16LittleEndian(body.AsSpan(2 * i), (ushort)tokens[i]);
            }
            string full = System.IO.Path.GetFullPath(path);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
            string temporary = full + ".tmp";
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write))
            {
                stream.Write(header);
                stream.Write(body);
                stream.Write(table);
            }
            File.Move(temporary, full, overwrite: true);
        }

        public void Dispose()
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
            map.Dispose();
        }
    }
}
