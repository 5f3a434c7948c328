using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace DevFs.Policy;

// A minimal YAML document model built from YamlDotNet's parser events. YamlDotNet's own
// representation model stops at the first duplicate key; this one keeps every key so that the
// validator can report all problems of a file at once. No reflection, so trimming/AOT safe.

internal abstract class YNode(int line, int column)
{
    public int Line { get; } = line;
    public int Column { get; } = column;

    public abstract string KindName { get; }
}

internal sealed class YScalar(string value, bool plain, int line, int column) : YNode(line, column)
{
    public string Value { get; } = value;

    /// <summary>Written without quotes (so "~", "null" and nothing at all mean null).</summary>
    public bool Plain { get; } = plain;

    public bool IsNull => Plain && Value is "" or "~" or "null" or "Null" or "NULL";

    public override string KindName => IsNull ? "empty" : "a single value";
}

internal sealed class YSequence(int line, int column) : YNode(line, column)
{
    public List<YNode> Items { get; } = [];

    public override string KindName => "a list";
}

internal sealed class YMapping(int line, int column) : YNode(line, column)
{
    public List<KeyValuePair<YNode, YNode>> Entries { get; } = [];

    public override string KindName => "a mapping";
}

internal sealed partial class YamlTree
{
    private const int MaxDepth = 64;

    private readonly IParser _parser;
    private readonly string _text;
    private readonly string _source;
    private readonly List<PolicyError> _errors;
    private readonly Dictionary<string, YNode> _anchors = new(StringComparer.Ordinal);
    // Flow collections ('{' or '[') not yet closed, for a useful position when the scanner fails.
    private readonly Stack<(Mark Start, char Open)> _openFlows = new();
    private Mark _lastEnd = Mark.Empty;

    private YamlTree(string text, string source, List<PolicyError> errors)
    {
        _text = text;
        _source = source;
        _errors = errors;
        _parser = new Parser(new StringReader(text));
    }

    /// <summary>
    /// Reads a single-document YAML text. Returns the root node, or null when the text holds no
    /// document or cannot be parsed; problems are added to <paramref name="errors"/>.
    /// </summary>
    public static YNode? Read(string text, string source, List<PolicyError> errors) =>
        new YamlTree(text, source, errors).ReadDocument();

    private YNode? ReadDocument()
    {
        try
        {
            Next();
            Expect<StreamStart>();
            if (!Next() || _parser.Current is StreamEnd)
                return null;
            Expect<DocumentStart>();
            Next();
            var root = ReadNode(0);
            Expect<DocumentEnd>();
            Next();
            if (_parser.Current is DocumentStart extra)
            {
                Error(extra.Start, "a policy file holds one YAML document; remove the second '---' and what follows it or merge it into the first");
                return null;
            }
            return root;
        }
        catch (YamlException e)
        {
            string message = StripMarks(e.Message);
            var at = e.Start;
            if (message.Contains("tab", StringComparison.OrdinalIgnoreCase) && FirstTabIndent() is { } tab)
            {
                Error(tab.Line, tab.Column, "YAML syntax error: a tab is used for indentation; YAML indents with spaces only");
                return null;
            }
            Error(at, "YAML syntax error: " + message);
            return null;
        }
        catch (ScannerFailure)
        {
            // YamlDotNet's scanner throws InvalidOperationException on some malformed input (an
            // unclosed flow collection running into the next line). Point at what is most likely wrong.
            if (_openFlows.TryPeek(out var open))
            {
                char close = open.Open == '{' ? '}' : ']';
                Error(open.Start, $"YAML syntax error: this '{open.Open}' is not closed; close it with '{close}' on the same line or continue it with deeper indentation");
            }
            else
            {
                Error(_lastEnd, "YAML syntax error: cannot read what follows this point");
            }
            return null;
        }
        catch (DepthException e)
        {
            Error(e.At, $"nesting deeper than {MaxDepth} levels; a policy needs at most 5");
            return null;
        }
    }

    private bool Next()
    {
        if (_parser.Current is { } current)
            _lastEnd = current.End;
        try
        {
            return _parser.MoveNext();
        }
        catch (InvalidOperationException)
        {
            throw new ScannerFailure();
        }
    }

    private void Expect<T>() where T : ParsingEvent
    {
        var c = _parser.Current ?? throw new YamlException(_lastEnd, _lastEnd, "unexpected end of input");
        if (c is not T)
            throw new YamlException(c.Start, c.End, $"unexpected {c.GetType().Name}, expected {typeof(T).Name}");
    }

    private YNode ReadNode(int depth)
    {
        var ev = _parser.Current ?? throw new YamlException(_lastEnd, _lastEnd, "unexpected end of input");
        if (depth > MaxDepth)
            throw new DepthException(ev.Start);
        // Register an opening flow collection before reading on: the scanner may fail right after it.
        if (ev is SequenceStart { Style: SequenceStyle.Flow })
            _openFlows.Push((ev.Start, '['));
        else if (ev is MappingStart { Style: MappingStyle.Flow })
            _openFlows.Push((ev.Start, '{'));
        Next();
        YNode node;
        switch (ev)
        {
            case AnchorAlias alias:
                if (_anchors.TryGetValue(alias.Value.Value, out var target))
                    return target;
                Error(alias.Start, $"alias '*{alias.Value.Value}' refers to no anchor defined before it; define '&{alias.Value.Value}' first");
                return new YScalar("", true, Line(alias.Start), Col(alias.Start));
            case Scalar s:
                node = new YScalar(s.Value, s.Style == ScalarStyle.Plain, Line(s.Start), Col(s.Start));
                break;
            case SequenceStart ss:
            {
                var seq = new YSequence(Line(ss.Start), Col(ss.Start));
                while (_parser.Current is not SequenceEnd)
                    seq.Items.Add(ReadNode(depth + 1));
                if (ss.Style == SequenceStyle.Flow)
                    _openFlows.Pop();
                Next();
                node = seq;
                break;
            }
            case MappingStart ms:
            {
                var map = new YMapping(Line(ms.Start), Col(ms.Start));
                while (_parser.Current is not MappingEnd)
                {
                    var key = ReadNode(depth + 1);
                    var value = ReadNode(depth + 1);
                    map.Entries.Add(new(key, value));
                }
                if (ms.Style == MappingStyle.Flow)
                    _openFlows.Pop();
                Next();
                node = map;
                break;
            }
            default:
                throw new YamlException(ev.Start, ev.End, $"unexpected {ev.GetType().Name}");
        }
        if (ev is NodeEvent ne && !ne.Anchor.IsEmpty)
            _anchors[ne.Anchor.Value] = node;
        return node;
    }

    private (int Line, int Column)? FirstTabIndent()
    {
        var lines = _text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            for (int j = 0; j < lines[i].Length && lines[i][j] is ' ' or '\t'; j++)
            {
                if (lines[i][j] == '\t')
                    return (i + 1, j + 1);
            }
        }
        return null;
    }

    private void Error(Mark at, string message) => Error(Line(at), Col(at), message);

    private void Error(int line, int column, string message) => _errors.Add(new PolicyError(_source, line, column, message));

    private static int Line(Mark m) => (int)Math.Clamp(m.Line, 1, int.MaxValue);

    private static int Col(Mark m) => (int)Math.Clamp(m.Column, 1, int.MaxValue);

    // YamlDotNet prefixes its messages with "(Line: l, Col: c, Idx: i) - (Line: ..., Idx: i): ".
    private static string StripMarks(string message) => MarksPrefix().Replace(message, "");

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ")]
    private static partial Regex MarksPrefix();

    private sealed class ScannerFailure : Exception;

    private sealed class DepthException(Mark at) : Exception
    {
        public Mark At { get; } = at;
    }
}
