using System.Diagnostics.CodeAnalysis;

namespace DevFs.Policy;

/// <summary>
/// A shell-style pattern over '/'-separated names (device names like "input/event3").
/// <list type="bullet">
/// <item><c>*</c> any run of characters within one path segment (never '/')</item>
/// <item><c>**</c> any run of characters, '/' included; <c>**/</c> at the start or after '/' also matches no segment at all</item>
/// <item><c>?</c> one character other than '/'</item>
/// <item><c>[abc]</c>, <c>[a-z]</c> one character of the class; <c>[!x]</c> or <c>[^x]</c> one character not in it (never '/')</item>
/// <item><c>\x</c> the character x itself</item>
/// </list>
/// Matching is case-sensitive and covers the whole name.
/// </summary>
public sealed class Glob
{
    private enum TokenKind { Literal, One, Star, DoubleStar, DoubleStarSlash, Class }

    private readonly record struct Token(TokenKind Kind, char Char = '\0', (char Lo, char Hi)[]? Ranges = null, bool Negated = false);

    private readonly Token[] _tokens;

    private Glob(string pattern, Token[] tokens)
    {
        Pattern = pattern;
        _tokens = tokens;
    }

    /// <summary>The pattern as written.</summary>
    public string Pattern { get; }

    /// <summary>True when the pattern has no wildcards (it matches exactly one name).</summary>
    public bool IsLiteral => _tokens.All(t => t.Kind == TokenKind.Literal);

    public override string ToString() => Pattern;

    /// <summary>Parses a pattern; throws <see cref="FormatException"/> with the reason when it is invalid.</summary>
    public static Glob Parse(string pattern) =>
        TryParse(pattern, out var glob, out var error) ? glob : throw new FormatException(error);

    /// <summary>Parses a pattern. On failure, <paramref name="error"/> says what is wrong (without naming the pattern).</summary>
    public static bool TryParse(string pattern, [NotNullWhen(true)] out Glob? glob, [NotNullWhen(false)] out string? error)
    {
        glob = null;
        error = null;
        if (pattern.Length == 0)
        {
            error = "the pattern is empty";
            return false;
        }

        var tokens = new List<Token>();
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            switch (c)
            {
                case '\\':
                    if (i + 1 >= pattern.Length)
                    {
                        error = "it ends with a lone '\\' (write '\\\\' for a backslash)";
                        return false;
                    }
                    tokens.Add(new Token(TokenKind.Literal, pattern[i + 1]));
                    i += 2;
                    break;
                case '?':
                    tokens.Add(new Token(TokenKind.One));
                    i++;
                    break;
                case '*':
                {
                    int run = 1;
                    while (i + run < pattern.Length && pattern[i + run] == '*')
                        run++;
                    if (run > 2)
                    {
                        error = $"'{new string('*', run)}' is not a wildcard; use '*' (within a segment) or '**' (across segments)";
                        return false;
                    }
                    if (run == 1)
                    {
                        tokens.Add(new Token(TokenKind.Star));
                        i++;
                    }
                    else
                    {
                        bool segmentStart = i == 0 || pattern[i - 1] == '/';
                        if (segmentStart && i + 2 < pattern.Length && pattern[i + 2] == '/')
                        {
                            tokens.Add(new Token(TokenKind.DoubleStarSlash));
                            i += 3;
                        }
                        else
                        {
                            tokens.Add(new Token(TokenKind.DoubleStar));
                            i += 2;
                        }
                    }
                    break;
                }
                case '[':
                {
                    int j = i + 1;
                    bool negated = false;
                    if (j < pattern.Length && (pattern[j] == '!' || pattern[j] == '^'))
                    {
                        negated = true;
                        j++;
                    }
                    var ranges = new List<(char, char)>();
                    bool first = true;
                    bool closed = false;
                    while (j < pattern.Length)
                    {
                        char lo = pattern[j];
                        if (lo == ']' && !first)
                        {
                            closed = true;
                            j++;
                            break;
                        }
                        first = false;
                        if (lo == '\\' && j + 1 < pattern.Length)
                            lo = pattern[++j];
                        if (lo == '/')
                        {
                            error = "a character class cannot contain '/'";
                            return false;
                        }
                        j++;
                        if (j + 1 < pattern.Length && pattern[j] == '-' && pattern[j + 1] != ']')
                        {
                            char hi = pattern[j + 1];
                            j += 2;
                            if (hi == '\\' && j < pattern.Length)
                                hi = pattern[j++];
                            if (hi < lo)
                            {
                                error = $"the range '{lo}-{hi}' in a character class runs backwards (write '{hi}-{lo}')";
                                return false;
                            }
                            ranges.Add((lo, hi));
                        }
                        else
                        {
                            ranges.Add((lo, lo));
                        }
                    }
                    if (!closed)
                    {
                        error = $"the character class starting at position {i + 1} has no closing ']'";
                        return false;
                    }
                    tokens.Add(new Token(TokenKind.Class, Ranges: ranges.ToArray(), Negated: negated));
                    i = j;
                    break;
                }
                default:
                    tokens.Add(new Token(TokenKind.Literal, c));
                    i++;
                    break;
            }
        }

        glob = new Glob(pattern, tokens.ToArray());
        return true;
    }

    /// <summary>Whether the whole of <paramref name="name"/> matches the pattern.</summary>
    public bool IsMatch(string name)
    {
        // Memoised match of (token index, name index): linear in tokens x name length, no exponential backtracking.
        var memo = new sbyte[(_tokens.Length + 1) * (name.Length + 1)];
        return MatchAt(0, 0, name, memo);
    }

    private bool MatchAt(int ti, int si, string s, sbyte[] memo)
    {
        int key = ti * (s.Length + 1) + si;
        if (memo[key] != 0)
            return memo[key] > 0;
        bool result = Compute(ti, si, s, memo);
        memo[key] = result ? (sbyte)1 : (sbyte)-1;
        return result;
    }

    private bool Compute(int ti, int si, string s, sbyte[] memo)
    {
        while (true)
        {
            if (ti == _tokens.Length)
                return si == s.Length;
            var t = _tokens[ti];
            switch (t.Kind)
            {
                case TokenKind.Literal:
                    if (si >= s.Length || s[si] != t.Char)
                        return false;
                    break;
                case TokenKind.One:
                    if (si >= s.Length || s[si] == '/')
                        return false;
                    break;
                case TokenKind.Class:
                    if (si >= s.Length || s[si] == '/' || InClass(t, s[si]) == t.Negated)
                        return false;
                    break;
                case TokenKind.Star:
                    for (int j = si; ; j++)
                    {
                        if (MatchAt(ti + 1, j, s, memo))
                            return true;
                        if (j >= s.Length || s[j] == '/')
                            return false;
                    }
                case TokenKind.DoubleStar:
                    for (int j = si; j <= s.Length; j++)
                    {
                        if (MatchAt(ti + 1, j, s, memo))
                            return true;
                    }
                    return false;
                case TokenKind.DoubleStarSlash:
                    // Zero segments, or any run that ends with '/'.
                    if (MatchAt(ti + 1, si, s, memo))
                        return true;
                    for (int j = si; j < s.Length; j++)
                    {
                        if (s[j] == '/' && MatchAt(ti + 1, j + 1, s, memo))
                            return true;
                    }
                    return false;
            }
            ti++;
            si++;
        }
    }

    private static bool InClass(Token t, char c)
    {
        foreach (var (lo, hi) in t.Ranges!)
        {
            if (c >= lo && c <= hi)
                return true;
        }
        return false;
    }
}
