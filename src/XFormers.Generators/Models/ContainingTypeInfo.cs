namespace XFormers.Generators.Models
{
    /// <summary>One type around the declared method, outermost first: how to re-open it as a partial declaration.</summary>
    /// <param name="Keyword">class, struct, record, record struct or interface.</param>
    /// <param name="Name">The type's name as C# code (<c>@class</c> stays escaped).</param>
    internal sealed record ContainingTypeInfo(string Keyword, string Name);
}
