using System;
using Scriban.Runtime;
using XFormers.Generators.Models;

namespace XFormers.Generators.Templates
{
    /// <summary>
    /// The calls the kernel templates TensorCore.liquid includes (TensorCore.Forward.liquid, TensorCore.BackwardKv.liquid,
    /// TensorCore.BackwardQ.liquid) write over and over, as functions they call by name: a fragment is named by a stem
    /// and its four registers <c>stem_0</c> … <c>stem_3</c> (<c>frag "s" 0 3</c> is <c>s0_3</c>).
    /// Formatting only: which fragments meet where is the templates', as it was when they spelt the calls out.
    /// </summary>
    internal static class TensorCoreFragments
    {
        /// <summary>
        /// <c>frag</c>, <c>accumulator</c>, <c>indicator</c>, <c>mma</c>, <c>pack_a</c>, <c>ldmatrix_a</c>,
        /// <c>ldmatrix_b</c> and <c>ldmatrix_bt</c> for a variant's plan.
        /// </summary>
        public static ScriptObject Functions(TensorCorePlan plan)
        {
            var functions = new ScriptObject();
            functions.Import("frag", new Func<string, object[], string>(Name));
            functions.Import("accumulator", new Func<string, string>(Accumulator));
            functions.Import("indicator", new Func<string, string>(Indicator));
            functions.Import("mma", new Func<string, string, string, int, string>(
                (acc, a, b, half) => Mma(plan.Mma, acc, a, b, half)));
            functions.Import("pack_a", new Func<string, string, int, string>(
                (fragment, acc, half) => PackA(plan.Pack, fragment, acc, half)));
            functions.Import("ldmatrix_a", new Func<string, object, object, string, string>(
                (tile, row, column, fragment) =>
                    LoadMatrix("LoadMatrixX4", tile, row, column, "8, 0, 0, 8", fragment)));
            functions.Import("ldmatrix_b", new Func<string, object, object, string, string>(
                (tile, row, column, fragment) =>
                    LoadMatrix("LoadMatrixX4", tile, row, column, "0, 8, 8, 0", fragment)));
            functions.Import("ldmatrix_bt", new Func<string, object, object, string, string>(
                (tile, row, column, fragment) =>
                    LoadMatrix("LoadMatrixX4Transposed", tile, row, column, "8, 0, 0, 8", fragment)));
            return functions;
        }

        /// <summary>
        /// A fragment's stem: the letters, then the indices joined by <c>_</c> (<c>k</c>, 1, 2 → <c>k1_2</c>).
        /// </summary>
        private static string Name(string letters, params object[] indices) => letters + string.Join("_", indices);

        /// <summary>The four fp32 registers of the accumulator fragment <paramref name="acc"/>, zeroed.</summary>
        private static string Accumulator(string acc) =>
            $"float {acc}_0 = 0f, {acc}_1 = 0f, {acc}_2 = 0f, {acc}_3 = 0f;";

        /// <summary>
        /// The four registers of the accumulator fragment <paramref name="acc"/> as 0/1 indicators of being non-zero
        /// (TensorCore.Indicator, NaN included): P or Pᵀ in the poison pass.
        /// </summary>
        private static string Indicator(string acc) =>
            $"{acc}_0 = Indicator({acc}_0); {acc}_1 = Indicator({acc}_1); " +
            $"{acc}_2 = Indicator({acc}_2); {acc}_3 = Indicator({acc}_3);";

        /// <summary>
        /// One mma.sync.m16n8k16 (TensorCore.MmaM16N8K16): accumulators <paramref name="acc"/> +=
        /// A <paramref name="a"/> · B, B the first (<paramref name="half"/> 0) or second (1) register pair of the x4
        /// fragment <paramref name="b"/>.
        /// </summary>
        private static string Mma(string mma, string acc, string a, string b, int half) =>
            $"{mma}(ref {acc}_0, ref {acc}_1, ref {acc}_2, ref {acc}_3, {a}_0, {a}_1, {a}_2, {a}_3, " +
            $"{b}_{2 * half}, {b}_{2 * half + 1}, exchange);";

        /// <summary>
        /// Half of an A fragment from accumulators, as FlashAttention-2 re-packs P and dS in registers: the
        /// accumulators <paramref name="acc"/> (an 8-column n-tile) packed in pairs into registers 2 ·
        /// <paramref name="half"/> and 2 · <paramref name="half"/> + 1 of <paramref name="fragment"/>.
        /// </summary>
        private static string PackA(string pack, string fragment, string acc, int half) =>
            $"uint {fragment}_{2 * half} = {pack}({acc}_0, {acc}_1), " +
            $"{fragment}_{2 * half + 1} = {pack}({acc}_2, {acc}_3);";

        /// <summary>
        /// One ldmatrix.x4 (TensorCore.LoadMatrixX4) from a row-major shared tile into the registers of
        /// <paramref name="fragment"/>, its four 8×8 matrices at <paramref name="offsets"/> (row, column of the
        /// second; row, column of the third): an A fragment (8, 0, 0, 8), the B fragments of two 8-row n-tiles
        /// (0, 8, 8, 0), or transposed, of two 8-column tiles.
        /// </summary>
        private static string LoadMatrix(
            string method, string tile, object row, object column, string offsets, string fragment) =>
            $"{method}(tileWords, sharedBase, {tile}, TcRow, {row}, {column}, {offsets}, " +
            $"out uint {fragment}_0, out uint {fragment}_1, out uint {fragment}_2, out uint {fragment}_3);";
    }
}
