using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;

namespace XFormers.Generators.Models
{
    /// <summary>An immutable array with value equality, so that models holding it cache incrementally.</summary>
    internal readonly struct EquatableArray<T> : IEquatable<EquatableArray<T>>, IEnumerable<T>
        where T : IEquatable<T>
    {
        private readonly T[]? array;

        public EquatableArray(IEnumerable<T> items) => array = items.ToArray();

        public static EquatableArray<T> Empty => new(Array.Empty<T>());

        public int Count => array?.Length ?? 0;

        public T this[int index] => array![index];

        public ImmutableArray<T> AsImmutableArray() => array is null ? ImmutableArray<T>.Empty : ImmutableArray.Create(array);

        public bool Equals(EquatableArray<T> other)
        {
            var a = array ?? Array.Empty<T>();
            var b = other.array ?? Array.Empty<T>();
            if (a.Length != b.Length)
                return false;
            for (int i = 0; i < a.Length; i++)
            {
                if (!a[i].Equals(b[i]))
                    return false;
            }
            return true;
        }

        public override bool Equals(object? obj) => obj is EquatableArray<T> other && Equals(other);

        public override int GetHashCode()
        {
            int hash = 17;
            foreach (var item in array ?? Array.Empty<T>())
                hash = unchecked(hash * 31 + item.GetHashCode());
            return hash;
        }

        public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)(array ?? Array.Empty<T>())).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        public static bool operator ==(EquatableArray<T> left, EquatableArray<T> right) => left.Equals(right);

        public static bool operator !=(EquatableArray<T> left, EquatableArray<T> right) => !left.Equals(right);
    }
}
