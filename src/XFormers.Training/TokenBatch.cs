using System;
using ILGPU;
using ILGPU.Runtime;

namespace XFormers.Training
{
    /// <summary>
    /// Training batches made on the device from the step number, so a step needs no upload and a resumed run
    /// sees the same batches: each sequence b of step s starts at hash(seed, s, b). Counting task (the seed's):
    /// inputs (start + t) mod vocab, targets one ahead. Text: a window of the token stream, uploaded once.
    /// </summary>
    public sealed class TokenBatch : IDisposable
    {
        private readonly MemoryBuffer1D<int, Stride1D.Dense>? data;

        private TokenBatch(XFormersContext context, int vocab, int[]? tokens, int seed, long allocate = 0)
        {
            Vocab = vocab;
            Seed = seed;
            if (tokens is not null)
            {
                data = context.Accelerator.Allocate1D(tokens);
                TextLength = tokens.Length;
            }
            else if (allocate > 0)
            {
                if (allocate > int.MaxValue)
                    throw new ArgumentOutOfRangeException(nameof(allocate), $"{allocate} tokens; batches index at most {int.MaxValue}.");
                data = context.Accelerator.Allocate1D<int>(allocate);
                TextLength = (int)allocate;
            }
        }

        public int Vocab { get; }

        public int Seed { get; }

        /// <summary>Length of the token stream (0 for the counting task).</summary>
        public int TextLength { get; }

        public bool IsCounting => data is null;

        public static TokenBatch Counting(XFormersContext context, int vocab, int seed) => new(context, vocab, null, seed);

        public static TokenBatch FromTokens(XFormersContext context, int vocab, int[] tokens, int seed)
        {
            ArgumentNullException.ThrowIfNull(tokens);
            return new TokenBatch(context, vocab, tokens, seed);
        }

        /// <summary>
        /// The tokens of a memory-mapped <see cref="TokenFile"/>, widened to int on the way to the device a chunk at a
        /// time (the file is never read whole into managed memory). Every token must be below <paramref name="vocab"/>.
        /// </summary>
        public static TokenBatch FromTokenFile(XFormersContext context, int vocab, TokenFile file, int seed)
        {
            ArgumentNullException.ThrowIfNull(context);
            ArgumentNullException.ThrowIfNull(file);
            if (file.VocabSize > vocab)
                throw new ArgumentException($"{file.Path} holds ids up to {file.VocabSize - 1}; the model's vocabulary is {vocab}.", nameof(vocab));
            var batch = new TokenBatch(context, vocab, null, seed, file.Count);
            const int Chunk = 1 << 20;
            var widened = new int[(int)Math.Min(Chunk, Math.Max(1, file.Count))];
            for (long start = 0; start < file.Count; start += Chunk)
            {
                int n = (int)Math.Min(Chunk, file.Count - start);
                var tokens = file.Tokens(start, n);
                for (int i = 0; i < n; i++)
                    widened[i] = tokens[i];
                ((ArrayView<int>)batch.data!.View).SubView(start, n).CopyFromCPU(widened.AsSpan(0, n));
            }
            return batch;
        }

        internal struct Args
        {
            public ArrayView<int> Data;
            public ArrayView<int> Inputs;
            public ArrayView<int> Targets;
            public int Sequence;
            public int Vocab;
            public int Span;
            public uint Seed;
            public uint Step;
            public int Counting;
            public int FirstSequence;
        }

        /// <summary>A 32-bit integer hash (lowbias32): one avalanche per call.</summary>
        public static uint Mix(uint x)
        {
            x ^= x >> 16;
            x *= 0x7FEB352Du;
            x ^= x >> 15;
            x *= 0x846CA68Bu;
            x ^= x >> 16;
            return x;
        }

        /// <summary>Where sequence <paramref name="b"/> of step <paramref name="step"/> starts, in [0, span).</summary>
        public static int Start(uint seed, uint step, int b, int span) =>
            (int)(Mix(seed ^ Mix(step * 0x9E3779B9u + Mix((uint)b + 0x632BE5ABu))) % (uint)span);

        internal static void Kernel(Index1D index, Args a)
        {
            int b = index / a.Sequence;
            int t = index - b * a.Sequence;
            int start = Start(a.Seed, a.Step, a.FirstSequence + b, a.Span);
            if (a.Counting != 0)
            {
                a.Inputs[index] = (start + t) % a.Vocab;
                a.Targets[index] = (start + t + 1) % a.Vocab;
            }
            else
            {
                a.Inputs[index] = a.Data[start + t];
                a.Targets[index] = a.Data[start + t + 1];
            }
        }

        /// <summary>
        /// Writes inputs and targets [batch, sequence] for <paramref name="step"/>: sequences
        /// [<paramref name="firstSequence"/>, firstSequence + batch) of the step's global batch (a data-parallel rank's share;
        /// the ranks together see the batches one process would).
        /// </summary>
        public void Make(DeviceLauncher launcher, int step, int batch, int sequence, ArrayView<int> inputs, ArrayView<int> targets, int firstSequence = 0)
        {
            ArgumentNullException.ThrowIfNull(launcher);
            int span = IsCounting ? Vocab : TextLength - sequence;
            if (span <= 0)
                throw new InvalidOperationException($"the text has {TextLength} tokens; sequences of {sequence} need at least {sequence + 1}.");
            launcher.Launch(Kernel, (long)batch * sequence, new Args
            {
                Data = data?.View ?? inputs,
                Inputs = inputs,
                Targets = targets,
                Sequence = sequence,
                Vocab = Vocab,
                Span = span,
                Seed = (uint)Seed,
                Step = (uint)step,
                Counting = IsCounting ? 1 : 0,
                FirstSequence = firstSequence,
            });
        }

        public void Dispose() => data?.Dispose();
    }
}
