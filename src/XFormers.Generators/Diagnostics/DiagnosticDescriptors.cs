using Microsoft.CodeAnalysis;

namespace XFormers.Generators.Diagnostics
{
    /// <summary>
    /// Every diagnostic the attention generator reports. docs/DSL.md mirrors this table, with a wrong
    /// and a right declaration for each ID.
    /// </summary>
    internal static class DiagnosticDescriptors
    {
        private const string Category = "XFormers.Attention";

        /// <summary>XFA0001: the declared method is not <c>static partial</c>, has a body, or is <c>extern</c>.</summary>
        public static readonly DiagnosticDescriptor MethodNotStaticPartial = new(
            id: "XFA0001",
            title: "Attention method must be static partial",
            messageFormat: "Attention method '{0}' must be declared 'static partial' with no body, like 'public static partial AttentionKernel {0}()'",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>
        /// XFA0002: a type around the method is not partial, is private or protected (the dispatch table's module
        /// initializer could not reach it), or is file-local (the generated half could not extend it).
        /// </summary>
        public static readonly DiagnosticDescriptor TypeNotPartial = new(
            id: "XFA0002",
            title: "Attention method must be in a partial type the whole assembly can see",
            messageFormat: "Type '{0}' must be declared 'partial', and neither 'private', 'protected' nor 'file', so the generator can add the kernels and register them at load ({1})",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0003: the method does not return <c>XFormers.AttentionKernel</c>, or returns a type the compiler cannot find.</summary>
        public static readonly DiagnosticDescriptor WrongReturnType = new(
            id: "XFA0003",
            title: "Attention method must return XFormers.AttentionKernel",
            messageFormat: "Attention method '{0}' returns '{1}'; declare it as returning 'XFormers.AttentionKernel'",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0004: the head dimension has no kernel.</summary>
        public static readonly DiagnosticDescriptor UnsupportedHeadDim = new(
            id: "XFA0004",
            title: "Unsupported head dimension",
            messageFormat: "HeadDim = {0} is not supported; use a multiple of 8 from 8 to 256 (for example 32, 64 or 128)",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0005: a tile size is out of range: BlockM must be a power of two, BlockN a multiple of 16, both 16..128.</summary>
        public static readonly DiagnosticDescriptor InvalidTileSize = new(
            id: "XFA0005",
            title: "Invalid tile size",
            messageFormat: "{0} = {1} is not a valid tile size; use {2}, or 0 to let the generator pick one for the head dim",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0006: the tiles do not divide each other.</summary>
        public static readonly DiagnosticDescriptor TilesDoNotDivide = new(
            id: "XFA0006",
            title: "Tile sizes must divide each other",
            messageFormat: "BlockM = {0} and BlockN = {1} do not divide each other; the larger tile must be a multiple of the smaller, so a causal diagonal falls on whole tiles",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0007: the tiles need more shared memory than a group has.</summary>
        public static readonly DiagnosticDescriptor SharedMemoryBudget = new(
            id: "XFA0007",
            title: "Tiles exceed the shared-memory budget",
            messageFormat: "BlockN = {0} with HeadDim = {1} needs {2} bytes of shared memory per group for the K and V tiles; the budget is {3} bytes: use BlockN = {4} or smaller",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0008: the head grouping is inconsistent.</summary>
        public static readonly DiagnosticDescriptor InvalidGrouping = new(
            id: "XFA0008",
            title: "Invalid head grouping",
            messageFormat: "{0}",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0009: two options contradict each other.</summary>
        public static readonly DiagnosticDescriptor ConflictingOptions = new(
            id: "XFA0009",
            title: "Conflicting attention options",
            messageFormat: "{0}",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0010: generic methods or generic containing types.</summary>
        public static readonly DiagnosticDescriptor GenericNotSupported = new(
            id: "XFA0010",
            title: "Generic attention declarations are not supported",
            messageFormat: "'{0}' is generic; declare attention variants as non-generic methods of non-generic types",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0011: the method takes parameters.</summary>
        public static readonly DiagnosticDescriptor MethodHasParameters = new(
            id: "XFA0011",
            title: "Attention method must take no parameters",
            messageFormat: "Attention method '{0}' must take no parameters; inputs go to the returned kernel's Forward and Backward",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0012: an enum argument holds a value the enum does not define.</summary>
        public static readonly DiagnosticDescriptor UnknownEnumValue = new(
            id: "XFA0012",
            title: "Unknown option value",
            messageFormat: "{0} = {1} is not a defined {2} value; use one of: {3}",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0013: the method returns by reference (<c>ref</c> or <c>ref readonly</c>).</summary>
        public static readonly DiagnosticDescriptor ReturnsByReference = new(
            id: "XFA0013",
            title: "Attention method must return by value",
            messageFormat: "Attention method '{0}' returns '{1}' by reference; remove '{2}' and return 'XFormers.AttentionKernel' by value",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0014: a member of the declaring type uses the generator's reserved <c>__XFormers_</c> prefix.</summary>
        public static readonly DiagnosticDescriptor ReservedName = new(
            id: "XFA0014",
            title: "Names starting with __XFormers_ are reserved",
            messageFormat: "'{0}' starts with '__XFormers_', which the attention generator reserves for the members it adds to '{1}'; rename it",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0015: <c>ScoreMod</c> or <c>MaskMod</c> names no method of the declaring type, or several (overloads).</summary>
        public static readonly DiagnosticDescriptor ModNotFound = new(
            id: "XFA0015",
            title: "Mod method not found",
            messageFormat: "{0} = \"{1}\" {2}; name one static method of '{3}' with nameof, like '{0} = nameof(MyMod)'",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0016: the mod method's signature is not the one its kind takes.</summary>
        public static readonly DiagnosticDescriptor ModSignature = new(
            id: "XFA0016",
            title: "Mod method has the wrong signature",
            messageFormat: "Mod '{0}' {1}; declare it as '{2}'",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0017: the mod method has no body the generator can read (extern, abstract, a partial definition without an implementation).</summary>
        public static readonly DiagnosticDescriptor ModWithoutBody = new(
            id: "XFA0017",
            title: "Mod method has no body",
            messageFormat: "Mod '{0}' has no body to compile; give it an expression body or a block body in the declaring type",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>
        /// XFA0018: the mod method, its argument struct or a constant it reads is declared in another file than the
        /// [Attention] method (the generator re-reads a declaration only when its own file changes).
        /// </summary>
        public static readonly DiagnosticDescriptor ModInOtherFile = new(
            id: "XFA0018",
            title: "Mod must be declared in the same file as its attention method",
            messageFormat: "{0} '{1}' is declared in another file than '{2}'; move it into the file that declares '{2}', so an edit to it rebuilds the kernels",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0019: the mod's body uses something the mod compiler does not translate into kernel code.</summary>
        public static readonly DiagnosticDescriptor ModUnsupported = new(
            id: "XFA0019",
            title: "Unsupported construct in a mod",
            messageFormat: "'{0}' is not supported in mod '{1}': {2}",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0020: a field of the mods' argument struct has a type with no slot.</summary>
        public static readonly DiagnosticDescriptor ModArgsFieldType = new(
            id: "XFA0020",
            title: "Unsupported mod argument field",
            messageFormat: "Field '{0}' of '{1}' has type '{2}'; mod arguments are int, bool, float, Tensor<int> or Tensor<float> fields",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0021: the argument struct has more fields of a kind than the kernels have slots for.</summary>
        public static readonly DiagnosticDescriptor ModArgsTooMany = new(
            id: "XFA0021",
            title: "Too many mod arguments",
            messageFormat: "Field '{0}' of '{1}' is one {2} too many: the kernels have {3}; pack the values into a table (Tensor<int> or Tensor<float>)",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0022: the score mod and the mask mod take different argument structs.</summary>
        public static readonly DiagnosticDescriptor ModArgsMismatch = new(
            id: "XFA0022",
            title: "Mods take different argument types",
            messageFormat: "Mod '{0}' takes '{1}' but mod '{2}' takes '{3}'; both mods of a variant take the same argument struct",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0023: a table field is indexed with two different ranks.</summary>
        public static readonly DiagnosticDescriptor ModTableRank = new(
            id: "XFA0023",
            title: "Mod table indexed with different ranks",
            messageFormat: "Table '{0}' is indexed with {1} index(es) here and {2} elsewhere; index each table with one rank (1 to 3) everywhere",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);

        /// <summary>XFA0099: the generator met something it did not expect; it reports instead of throwing.</summary>
        public static readonly DiagnosticDescriptor InternalError = new(
            id: "XFA0099",
            title: "Attention generator internal error",
            messageFormat: "The attention generator could not process '{0}': {1}; please report this with the declaration",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true);
    }
}
