namespace DevFs.Policy;

/// <summary>One problem found in a policy, at a 1-based line and column of its source.</summary>
public sealed record PolicyError(string Source, int Line, int Column, string Message)
{
    public override string ToString() => $"{Source}:{Line}:{Column}: {Message}";
}

/// <summary>A policy could not be read or is invalid. <see cref="Errors"/> holds every problem found, in source order.</summary>
public sealed class PolicyException : Exception
{
    public PolicyException(IReadOnlyList<PolicyError> errors)
        : base(string.Join(Environment.NewLine, errors))
    {
        if (errors.Count == 0)
            throw new ArgumentException("a PolicyException needs at least one error", nameof(errors));
        Errors = errors;
    }

    public IReadOnlyList<PolicyError> Errors { get; }
}
