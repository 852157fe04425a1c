namespace XFormers.Generators.Models
{
    /// <summary>A value and the diagnostics found while computing it, travelling together through the pipeline.</summary>
    internal sealed record Result<T>(T? Value, EquatableArray<DiagnosticInfo> Diagnostics)
        where T : class;
}
