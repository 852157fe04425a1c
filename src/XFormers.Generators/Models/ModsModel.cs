using XFormers.Generators.Mods;

namespace XFormers.Generators.Models
{
    /// <summary>
    /// A variant's score and mask mods, compiled (Mods/): the C# the templates print into every kernel family, and what the
    /// runtime needs to bind the run-time arguments. Plain data with value equality.
    /// </summary>
    internal sealed record ModsModel
    {
        /// <summary>Whether the variant declares a score mod.</summary>
        public bool HasScore { get; init; }

        /// <summary>Whether the variant declares a mask mod.</summary>
        public bool HasMask { get; init; }

        /// <summary>
        /// Statements of <c>static float ModScore(in AttentionArgs&lt;T&gt; a, float score, int batch, int head, int q, int kv)</c>,
        /// one per line, unindented; the last one returns the modified score.
        /// </summary>
        public EquatableArray<string> ScoreBody { get; init; } = EquatableArray<string>.Empty;

        /// <summary>Statements of <c>static float ModScoreGrad(…)</c> (same parameters): d ModScore / d score.</summary>
        public EquatableArray<string> ScoreGradBody { get; init; } = EquatableArray<string>.Empty;

        /// <summary>Statements of <c>static bool ModMask(in AttentionArgs&lt;T&gt; a, int batch, int head, int q, int kv)</c>.</summary>
        public EquatableArray<string> MaskBody { get; init; } = EquatableArray<string>.Empty;

        /// <summary>The mods' run-time argument type as C# code (<c>global::Ns.DocArgs</c>), or empty when they take none.</summary>
        public string ArgsType { get; init; } = "";

        /// <summary>
        /// Statements of <c>static global::XFormers.ModBinding BindMods(in TArgs args)</c> after <c>var m = new
        /// global::XFormers.ModBinding(typeof(TArgs));</c> and before <c>return m;</c>: one <c>m.Int(slot, …)</c>,
        /// <c>m.Float(slot, …)</c>, <c>m.IntTable(slot, …, rank, "Field")</c> or <c>m.FloatTable(slot, …, rank, "Field")</c> per field.
        /// </summary>
        public EquatableArray<string> BindBody { get; init; } = EquatableArray<string>.Empty;

        /// <summary>Whether the mask mod reads the batch index (else one block mask serves every batch).</summary>
        public bool MaskReadsBatch { get; init; }

        /// <summary>Whether the mask mod reads the head index (else one block mask serves every head).</summary>
        public bool MaskReadsHead { get; init; }

        /// <summary>The score mod's method name, or empty.</summary>
        public string ScoreMethod { get; init; } = "";

        /// <summary>The mask mod's method name, or empty.</summary>
        public string MaskMethod { get; init; } = "";

        /// <summary>The score mod as IR (what <see cref="ScoreBody"/> prints and the sm_90a backend lowers with <see cref="ModPtxWriter"/>), or null.</summary>
        public ModBody? Score { get; init; }

        /// <summary>d Score / d score as IR (<see cref="ScoreGradBody"/>), or null.</summary>
        public ModBody? ScoreGrad { get; init; }

        /// <summary>The mask mod as IR (<see cref="MaskBody"/>), or null.</summary>
        public ModBody? Mask { get; init; }

        /// <summary>Every field of the argument struct with its slot, in declaration order (empty without arguments).</summary>
        public EquatableArray<ModField> Fields { get; init; } = EquatableArray<ModField>.Empty;
    }
}
