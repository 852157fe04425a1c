using System;
using System.Collections.Generic;
using System.Linq;
using XFormers.Dsl;

namespace XFormers
{
    /// <summary>
    /// The dispatch table: every attention variant registered at load by generated module initializers
    /// (the runtime's stock variants, then each assembly that declares its own). <see cref="Fmha"/> finds a
    /// variant here by (mask, bias, grouping, head dim, dtype).
    /// </summary>
    public static class AttentionRegistry
    {
        private static readonly object Gate = new();

        // Replaced whole on each registration, so lookups read it without a lock or a copy.
        private static volatile AttentionKernel[] kernels = Array.Empty<AttentionKernel>();

        /// <summary>Adds a variant; a later registration of the same name replaces the earlier one.</summary>
        public static void Register(AttentionKernel kernel)
        {
            ArgumentNullException.ThrowIfNull(kernel);
            lock (Gate)
                kernels = kernels.Where(k => k.Variant.Name != kernel.Variant.Name).Append(kernel).ToArray();
        }

        /// <summary>
        /// Every registered variant, in registration order. The runtime's stock variants are here from the start: its
        /// module initializer registers them before any of its code runs.
        /// </summary>
        public static IReadOnlyList<AttentionKernel> Variants => kernels;

        /// <summary>
        /// The best variant for a problem, or null. A variant with the problem's grouping fixed at build
        /// time beats one that reads it at run time, then one whose bias gradient is as asked, then one with dropout only
        /// when it is asked for (<paramref name="needDropout"/>: p &gt; 0 takes only such a variant; p = 0 prefers one
        /// without); among equals, the one registered last (a user's assembly loads after the runtime) wins.
        /// </summary>
        public static AttentionKernel? Find(
            MaskKind mask, BiasKind bias, DType dtype, int headDim, int queryHeads, int kvHeads,
            bool needBackward = false, bool needBiasGradient = false, bool needDropout = false)
        {
            AttentionKernel? best = null;
            int bestScore = -1;
            foreach (var kernel in Variants)
            {
                var v = kernel.Variant;
                if (v.Mask != mask || v.Bias != bias || v.DType != dtype || v.HeadDim != headDim || v.HasMods)
                    continue;
                if ((needBackward && !v.Backward) || (needBiasGradient && !v.BiasGradient) || (needDropout && !v.Dropout))
                    continue;
                if (!GroupingFits(v, queryHeads, kvHeads))
                    continue;
                int score = (v.HasFixedGrouping ? 4 : 0) + (v.BiasGradient == needBiasGradient ? 2 : 0) + (v.Dropout == needDropout ? 1 : 0);
                if (score >= bestScore)
                {
                    best = kernel;
                    bestScore = score;
                }
            }
            return best;
        }

        /// <summary>Head dims registered for a (mask, bias, dtype) combination (with dropout, when asked), for error messages.</summary>
        public static IReadOnlyList<int> HeadDimsFor(MaskKind mask, BiasKind bias, DType dtype, bool withDropout = false) =>
            Variants.Select(k => k.Variant)
                .Where(v => v.Mask == mask && v.Bias == bias && v.DType == dtype && !v.HasMods && (v.Dropout || !withDropout))
                .Select(v => v.HeadDim).Distinct().OrderBy(d => d).ToArray();

        internal static bool GroupingFits(AttentionVariant v, int queryHeads, int kvHeads)
        {
            if (kvHeads <= 0 || queryHeads % kvHeads != 0)
                return false;
            if (v.Heads > 0 && v.Heads != queryHeads)
                return false;
            if (v.HasFixedGrouping && v.GroupSize != queryHeads / kvHeads)
                return false;
            return true;
        }
    }
}
