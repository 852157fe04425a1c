using System;
using XFormers.Kernels;

namespace XFormers
{
    /// <summary>
    /// One call's attention dropout, validated at the API boundary: the probability <see cref="P"/> of dropping a score and
    /// the <see cref="Seed"/> its mask is drawn under (docs/KERNEL-FEATURES.md, "Dropout"). <c>default</c> is no dropout.
    /// The forward records it with its log-sum-exp, and the backward must be given the same.
    /// </summary>
    internal readonly record struct AttentionDropout(double P, ulong Seed)
    {
        /// <summary>Whether the call asks for dropout (p &gt; 0): it needs a variant declared with <c>Dropout = true</c>.</summary>
        public bool IsRequested => P > 0;

        /// <summary>
        /// ⌊p · 2^32⌋: a score whose Philox word is below it is dropped. 0 for p below 2^-32, which then drops nothing (and
        /// 1 / (1 − p) rounds to 1 in float).
        /// </summary>
        public uint Threshold => (uint)Math.Min(uint.MaxValue, Math.Floor(P * 4294967296.0));

        /// <summary>
        /// p and the seed as given to a call: p in [0, 1) (else <see cref="ArgumentOutOfRangeException"/> on <c>p</c>), and a
        /// seed whenever p &gt; 0 (else <see cref="ArgumentException"/> on <c>seed</c>). p = 0 ignores the seed.
        /// </summary>
        public static AttentionDropout Create(double p, ulong? seed)
        {
            if (!(p >= 0 && p < 1))
                throw new ArgumentOutOfRangeException(nameof(p), p, $"p = {p}: the dropout probability must be in [0, 1).");
            if (p == 0)
                return default;
            if (seed is not { } value)
                throw new ArgumentException(
                    $"seed: dropout with p = {p} draws its mask from a seed; pass seed: (a new one each training step), and the same p and seed to the backward.",
                    nameof(seed));
            return new AttentionDropout(p, value);
        }

        /// <summary>The kernels' dropout fields of <paramref name="args"/> (left 0 without dropout: every score kept).</summary>
        public void Apply<T>(ref AttentionArgs<T> args)
            where T : unmanaged
        {
            if (Threshold == 0)
                return;
            args.DropoutThreshold = Threshold;
            args.DropoutScale = (float)(1 / (1 - P));
            args.DropoutSeed = Seed;
        }

        /// <summary>For messages: <c>p = 0.1, seed = 7</c>, or <c>p = 0 (no dropout)</c>.</summary>
        public override string ToString() => IsRequested ? $"p = {P}, seed = {Seed}" : "p = 0 (no dropout)";
    }
}
