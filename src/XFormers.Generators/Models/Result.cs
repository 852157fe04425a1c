namespace XFormers.Generators.Models
{
    /// <summary>
    /// A value and the diagnostics found while computing it, travelling together through the pipeline; for a declaration
    /// that was rejected, the <paramref name="Stub"/> that stands in for its body (null when no body could compile).
    /// </summary>
    internal sealed record Result<T>(T? Value, EquatableArray<DiagnosticInfo> Diagnostics, StubModel? Stub = null)
        where T : class;
}
