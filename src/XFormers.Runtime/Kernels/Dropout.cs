using System.Runtime.CompilerServices;

namespace XFormers.Kernels
{
    /// <summary>
    /// Attention dropout inside the kernels of a variant declared with <c>Dropout = true</c>. Score (b, h, i, j) — batch,
    /// query head, query row and key row as the tensors index them (a packed sequence's rows by their place in the packed
    /// tensor) — is kept when word <c>j % 4</c> of Philox4x32-10(counter = (j / 4, i, h, b), key = seed) is at least
    /// <see cref="AttentionArgs{T}.DropoutThreshold"/> = ⌊p · 2^32⌋, and a kept probability is scaled by
    /// <see cref="AttentionArgs{T}.DropoutScale"/> = 1 / (1 − p). Integer arithmetic only (mul.hi as
    /// <c>(ulong)a · b &gt;&gt; 32</c>), so the CPU and every GPU draw the same bits, those of
    /// <see cref="Reference.Philox"/> and <see cref="Reference.DropoutReference.Keep"/>. A threshold of 0 (p = 0) keeps
    /// every score unscaled.
    /// </summary>
    public static class Dropout
    {
        private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57;
        private const uint W0 = 0x9E3779B9, W1 = 0xBB67AE85;

        /// <summary>Ten rounds of Philox4x32 (Salmon et al., SC 2011) on counter (c0, c1, c2, c3) under key (k0, k1).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Philox4x32(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, out uint x0, out uint x1, out uint x2, out uint x3)
        {
            for (int round = 0; round < 10; round++)
            {
                ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
                uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0, hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
                c0 = hi1 ^ c1 ^ k0;
                c1 = lo1;
                c2 = hi0 ^ c3 ^ k1;
                c3 = lo0;
                k0 += W0;
                k1 += W1;
            }
            x0 = c0;
            x1 = c1;
            x2 = c2;
            x3 = c3;
        }

        /// <summary>The four words of key j's group of four (keys 4·⌊j/4⌋ to 4·⌊j/4⌋ + 3) for query row i of head h of batch b.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Words(ulong seed, int b, int h, int i, int j, out uint w0, out uint w1, out uint w2, out uint w3) =>
            Philox4x32((uint)(j >> 2), (uint)i, (uint)h, (uint)b, (uint)seed, (uint)(seed >> 32), out w0, out w1, out w2, out w3);

        /// <summary>Key j's word among its group's four.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Select(int j, uint w0, uint w1, uint w2, uint w3) =>
            (j & 3) == 0 ? w0 : (j & 3) == 1 ? w1 : (j & 3) == 2 ? w2 : w3;

        /// <summary>The factor of a probability whose word is <paramref name="word"/>: 1 / (1 − p) when kept, 0 when dropped.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float FactorOf<T>(in AttentionArgs<T> a, uint word)
            where T : unmanaged =>
            word >= a.DropoutThreshold ? a.DropoutScale : 0f;

        /// <summary>The factor of probability (b, h, i, j): 1 / (1 − p) when kept, 0 when dropped; 1 without dropout (p = 0).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Factor<T>(in AttentionArgs<T> a, int b, int h, int i, int j)
            where T : unmanaged
        {
            if (a.DropoutThreshold == 0u)
                return 1f;
            Words(a.DropoutSeed, b, h, i, j, out uint w0, out uint w1, out uint w2, out uint w3);
            return FactorOf(a, Select(j, w0, w1, w2, w3));
        }

        /// <summary>
        /// Keys j and j + 1 of query row i times their factors, for an even j: both lie in one group of four, so one Philox
        /// call serves them (the mma.sync kernels' key tiles of a dropout variant start on a multiple of four keys).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void ApplyPair<T>(in AttentionArgs<T> a, int b, int h, int i, int j, ref float p0, ref float p1)
            where T : unmanaged
        {
            Words(a.DropoutSeed, b, h, i, j, out uint w0, out uint w1, out uint w2, out uint w3);
            bool low = (j & 2) == 0;
            p0 *= FactorOf(a, low ? w0 : w2);
            p1 *= FactorOf(a, low ? w1 : w3);
        }
    }
}
