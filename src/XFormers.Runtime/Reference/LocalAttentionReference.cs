using System;

namespace XFormers.Reference
{
    /// <summary>
    /// Sliding-window (local) causal visibility, as xFormers' <c>LowerTriangularFromBottomRightLocalAttentionMask</c>,
    /// <c>BlockDiagonalCausalLocalAttentionMask</c> and <c>BlockDiagonalCausalLocalAttentionFromBottomRightMask</c> define
    /// it: with the causal diagonal at j − i = shift (0 top-left, Mkv − Mq bottom-right, per segment for block-diagonal
    /// masks), key j is visible to query i when shift − window &lt; j − i ≤ shift: each query sees at most
    /// <c>window</c> keys, ending at its diagonal. The oracle for local masks: as a dense −∞ bias for
    /// <see cref="ReferenceAttention"/>.
    /// </summary>
    public static class LocalAttentionReference
    {
        /// <summary>Whether key <paramref name="j"/> is visible to query <paramref name="i"/> with the diagonal at <paramref name="shift"/>.</summary>
        public static bool Visible(int i, int j, int shift, int window) => j - i <= shift && j - i > shift - window;

        /// <summary>
        /// A [1, 1, Mq, Mkv] bias (0 visible, −∞ masked) for one sequence, or for packed segments when
        /// <paramref name="qStarts"/> and <paramref name="kvStarts"/> are given (−∞ across segments).
        /// </summary>
        public static double[] Bias(int mq, int mkv, int window, bool fromBottomRight, int[]? qStarts = null, int[]? kvStarts = null)
        {
            if (window <= 0)
                throw new ArgumentOutOfRangeException(nameof(window), "A local window holds at least one key.");
            qStarts ??= new[] { 0, mq };
            kvStarts ??= new[] { 0, mkv };
            var bias = new double[(long)mq * mkv];
            Array.Fill(bias, double.NegativeInfinity);
            for (int s = 0; s + 1 < qStarts.Length; s++)
            {
                int qn = qStarts[s + 1] - qStarts[s], kn = kvStarts[s + 1] - kvStarts[s];
                int shift = fromBottomRight ? kn - qn : 0;
                for (int i = 0; i < qn; i++)
                {
                    for (int j = 0; j < kn; j++)
                    {
                        if (Visible(i, j, shift, window))
                            bias[(long)(qStarts[s] + i) * mkv + kvStarts[s] + j] = 0;
                    }
                }
            }
            return bias;
        }
    }
}
