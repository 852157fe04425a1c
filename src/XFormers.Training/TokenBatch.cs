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

        private TokenBatch(XFormersContext context, int vocab, int[]? tokens, int seed)
        {
            Vocab = vocab;
            Seed = seed;
            if (tokens is not null)
            {
                data = context.Accelerator.Allocate1D(tokens);
                TextLength = tokens.Length;
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
            int start = Start(a.Seed, a.Step, b, a.Span);
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

        /// <summary>Writes inputs and targets [batch, sequence] for <paramref name="step"/>.</summary>
        public void Make(DeviceLauncher launcher, int step, int batch, int sequence, ArrayView<int> inputs, ArrayView<int> targets)
        {
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
            });
        }

        public void Dispose() => data?.Dispose();
    }
}
