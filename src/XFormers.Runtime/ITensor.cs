using System;

namespace XFormers
{
    /// <summary>What every <see cref="Tensor{T}"/> says about itself, whatever its element type.</summary>
    public interface ITensor
    {
        /// <summary>The context whose accelerator holds the data.</summary>
        XFormersContext Context { get; }

        /// <summary>The element type (<c>T</c> of <see cref="Tensor{T}"/>).</summary>
        Type ElementType { get; }

        /// <summary>The dimensions.</summary>
        ReadOnlySpan<int> Shape { get; }

        /// <summary>Number of dimensions.</summary>
        int Rank { get; }

        /// <summary>Number of elements.</summary>
        long Length { get; }

        /// <summary>The shape as text, e.g. <c>[2, 512, 8, 64]</c>.</summary>
        string ShapeString { get; }
    }
}
