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

internal static partial class YamlTree
{
    private const int MaxDepth = 64;

    /// <summary>
    /// Reads a single-document YAML text. Returns the root node, or null when the text holds no
    /// document or cannot be parsed; problems are added to <paramref name="errors"/>.
    /// </summary>
    public static YNode? Read(string text, string source, List<PolicyError> errors)
    {
        var parser = new Parser(new StringReader(text));
        var anchors = new Dictionary<string, YNode>(StringComparer.Ordinal);
        try
        {
            Expect<StreamStart>(parser);
            if (!parser.MoveNext() || parser.Current is StreamEnd)
                return null;
            Expect<DocumentStart>(parser);
            parser.MoveNext();
            var root = ReadNode(parser, anchors, source, errors, 0);
            Expect<DocumentEnd>(parser);
            parser.MoveNext();
            if (parser.Current is DocumentStart extra)
            {
                errors.Add(new PolicyError(source, Line(extra.Start), Col(extra.Start),
                    "a policy file holds one YAML document; remove the second '---' and what follows it or merge it into the first"));
                return null;
            }
            return root;
        }
        catch (YamlException e)
        {
            errors.Add(new PolicyError(source, Line(e.Start), Col(e.Start), "YAML syntax error: " + StripMarks(e.Message)));
            return null;
        }
        catch (DepthException e)
        {
            errors.Add(new PolicyError(source, e.Line, e.Column, $"nesting deeper than {MaxDepth} levels; a policy needs at most 5"));
            return null;
        }
    }

    private static void Expect<T>(IParser parser) where T : ParsingEvent
    {
        if (parser.Current is null && !parser.MoveNext())
            throw new YamlException("unexpected end of input");
        if (parser.Current is not T)
        {
            var c = parser.Current!;
            throw new YamlException(c.Start, c.End, $"unexpected {c.GetType().Name}, expected {typeof(T).Name}");
        }
    }

    private static YNode ReadNode(IParser parser, Dictionary<string, YNode> anchors, string source, List<PolicyError> errors, int depth)
    {
        var ev = parser.Current ?? throw new YamlException("unexpected end of input");
        if (depth > MaxDepth)
            throw new DepthException(Line(ev.Start), Col(ev.Start));
        parser.MoveNext();
        YNode node;
        switch (ev)
        {
            case AnchorAlias alias:
                if (anchors.TryGetValue(alias.Value.Value, out var target))
                    return target;
                errors.Add(new PolicyError(source, Line(alias.Start), Col(alias.Start),
                    $"alias '*{alias.Value.Value}' refers to no anchor defined before it; define '&{alias.Value.Value}' first"));
                return new YScalar("", true, Line(alias.Start), Col(alias.Start));
            case Scalar s:
                node = new YScalar(s.Value, s.Style == ScalarStyle.Plain, Line(s.Start), Col(s.Start));
                break;
            case SequenceStart ss:
            {
                var seq = new YSequence(Line(ss.Start), Col(ss.Start));
                while (parser.Current is not SequenceEnd)
                    seq.Items.Add(ReadNode(parser, anchors, source, errors, depth + 1));
                parser.MoveNext();
                node = seq;
                break;
            }
            case MappingStart ms:
            {
                var map = new YMapping(Line(ms.Start), Col(ms.Start));
                while (parser.Current is not MappingEnd)
                {
                    var key = ReadNode(parser, anchors, source, errors, depth + 1);
                    var value = ReadNode(parser, anchors, source, errors, depth + 1);
                    map.Entries.Add(new(key, value));
                }
                parser.MoveNext();
                node = map;
                break;
            }
            default:
                throw new YamlException(ev.Start, ev.End, $"unexpected {ev.GetType().Name}");
        }
        if (ev is NodeEvent ne && !ne.Anchor.IsEmpty)
            anchors[ne.Anchor.Value] = node;
        return node;
    }

    private static int Line(Mark m) => (int)Math.Clamp(m.Line, 1, int.MaxValue);

    private static int Col(Mark m) => (int)Math.Clamp(m.Column, 1, int.MaxValue);

    // YamlDotNet prefixes its messages with "(Line: l, Col: c, Idx: i) - (Line: ..., Idx: i): ".
    private static string StripMarks(string message) => MarksPrefix().Replace(message, "");

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ")]
    private static partial Regex MarksPrefix();

    private sealed class DepthException(int line, int column) : Exception
    {
        public int Line { get; } = line;
        public int Column { get; } = column;
    }
}
