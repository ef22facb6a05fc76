using System.Globalization;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>
/// The arithmetic of a sample_from spec: numbers, key names, + - * / ^ (power, right-associative, binding tighter
/// than a leading minus as in Python's **), parentheses, and the functions min, max, log (natural, or log(x, base)),
/// log10, exp, sqrt, pow, round, floor, ceil, int, abs. Integers stay integers under + - * ^ and the rounding
/// functions (round halves to even, int truncates, as Python); / always gives a float.
/// </summary>
internal sealed class SampleExpression
{
    private static readonly HashSet<string> FunctionNames = new(StringComparer.Ordinal)
    {
        "min", "max", "log", "log10", "exp", "sqrt", "pow", "round", "floor", "ceil", "int", "abs",
    };

    private readonly Node _root;

    private SampleExpression(Node root, IReadOnlyCollection<string> names)
    {
        _root = root;
        Names = names;
    }

    /// <summary>The keys the expression reads, in order of first use.</summary>
    public IReadOnlyCollection<string> Names { get; }

    public static SampleExpression Parse(string text)
    {
        var parser = new Parser(text);
        var root = parser.ParseAll();
        return new SampleExpression(root, parser.Names);
    }

    public object Evaluate(TrialConfig config) => _root.Eval(name =>
    {
        var value = config[name];
        return value switch
        {
            long l => Num.Int(l),
            double d => Num.Float(d),
            bool b => Num.Int(b ? 1 : 0),
            _ => throw new InvalidOperationException($"'{name}' must be a number, got '{TrialConfig.Format(value)}'"),
        };
    }).ToObject();

    private readonly record struct Num(bool IsInt, long I, double D)
    {
        public static Num Int(long v) => new(true, v, v);

        public static Num Float(double v) => new(false, 0, v);

        public double Value => IsInt ? I : D;

        public object ToObject() => IsInt ? (object)I : D;
    }

    private abstract class Node
    {
        public abstract Num Eval(Func<string, Num> lookup);
    }

    private sealed class Constant(Num value) : Node
    {
        public override Num Eval(Func<string, Num> lookup) => value;
    }

    private sealed class Reference(string name) : Node
    {
        public override Num Eval(Func<string, Num> lookup) => lookup(name);
    }

    private sealed class Negate(Node operand) : Node
    {
        public override Num Eval(Func<string, Num> lookup)
        {
            var v = operand.Eval(lookup);
            return v.IsInt && v.I != long.MinValue ? Num.Int(-v.I) : Num.Float(-v.Value);
        }
    }

    private sealed class Binary(char op, Node left, Node right) : Node
    {
        public override Num Eval(Func<string, Num> lookup)
        {
            var a = left.Eval(lookup);
            var b = right.Eval(lookup);
            switch (op)
            {
                case '+': return a.IsInt && b.IsInt && TryInt(() => checked(a.I + b.I), out var s) ? s : Num.Float(a.Value + b.Value);
                case '-': return a.IsInt && b.IsInt && TryInt(() => checked(a.I - b.I), out var d) ? d : Num.Float(a.Value - b.Value);
                case '*': return a.IsInt && b.IsInt && TryInt(() => checked(a.I * b.I), out var m) ? m : Num.Float(a.Value * b.Value);
                case '/':
                    if (b.Value == 0) throw new InvalidOperationException("division by zero");
                    return Num.Float(a.Value / b.Value);
                default: return Power(a, b);
            }
        }
    }

    private sealed class Call(string name, IReadOnlyList<Node> args) : Node
    {
        public override Num Eval(Func<string, Num> lookup)
        {
            var v = args.Select(a => a.Eval(lookup)).ToArray();
            return name switch
            {
                "min" => v.Aggregate((x, y) => y.Value < x.Value ? y : x),
                "max" => v.Aggregate((x, y) => y.Value > x.Value ? y : x),
                "log" when v.Length == 2 => Num.Float(Log(v[0].Value) / Log(v[1].Value)),
                "log" => Num.Float(Log(v[0].Value)),
                "log10" => Num.Float(Log(v[0].Value) / Math.Log(10)),
                "exp" => Num.Float(Math.Exp(v[0].Value)),
                "sqrt" => v[0].Value < 0 ? throw new InvalidOperationException("sqrt of a negative number") : Num.Float(Math.Sqrt(v[0].Value)),
                "pow" => Power(v[0], v[1]),
                "round" when v.Length == 2 => Num.Float(Math.Round(v[0].Value, (int)Math.Clamp(v[1].Value, 0, 15), MidpointRounding.ToEven)),
                "round" => ToInt(Math.Round(v[0].Value, MidpointRounding.ToEven), v[0]),
                "floor" => ToInt(Math.Floor(v[0].Value), v[0]),
                "ceil" => ToInt(Math.Ceiling(v[0].Value), v[0]),
                "int" => ToInt(Math.Truncate(v[0].Value), v[0]),
                "abs" => v[0].IsInt && v[0].I != long.MinValue ? Num.Int(Math.Abs(v[0].I)) : Num.Float(Math.Abs(v[0].Value)),
                _ => throw new InvalidOperationException($"unknown function {name}"),
            };
        }

        private static double Log(double x) => x > 0 ? Math.Log(x) : throw new InvalidOperationException("log of a number that is not positive");

        private static Num ToInt(double x, Num original)
        {
            if (original.IsInt) return original;
            if (!double.IsFinite(x) || Math.Abs(x) >= 9.2e18) throw new InvalidOperationException($"cannot convert {ConfigValues.Num(x)} to an integer");
            return Num.Int((long)x);
        }
    }

    private static Num Power(Num a, Num b)
    {
        if (a.IsInt && b.IsInt && b.I >= 0)
        {
            try
            {
                long result = 1, factor = a.I, e = b.I;
                while (e > 0)
                {
                    if ((e & 1) == 1) result = checked(result * factor);
                    e >>= 1;
                    if (e > 0) factor = checked(factor * factor);
                }
                return Num.Int(result);
            }
            catch (OverflowException)
            {
            }
        }
        if (a.Value == 0 && b.Value < 0) throw new InvalidOperationException("zero to a negative power");
        return Num.Float(Math.Pow(a.Value, b.Value));
    }

    private static bool TryInt(Func<long> compute, out Num result)
    {
        try
        {
            result = Num.Int(compute());
            return true;
        }
        catch (OverflowException)
        {
            result = default;
            return false;
        }
    }

    private sealed class Parser(string text)
    {
        private readonly List<string> _names = new();
        private int _pos;

        public IReadOnlyCollection<string> Names => _names;

        public Node ParseAll()
        {
            if (string.IsNullOrWhiteSpace(text)) throw new FormatException("the expression is empty");
            var node = ParseSum();
            SkipSpace();
            if (_pos < text.Length) throw Error($"unexpected '{text[_pos]}'");
            return node;
        }

        private Node ParseSum()
        {
            var node = ParseProduct();
            while (Accept('+') || Accept('-'))
            {
                char op = text[_pos - 1];
                node = new Binary(op, node, ParseProduct());
            }
            return node;
        }

        private Node ParseProduct()
        {
            var node = ParseUnary();
            while (Accept('*') || Accept('/'))
            {
                char op = text[_pos - 1];
                node = new Binary(op, node, ParseUnary());
            }
            return node;
        }

        private Node ParseUnary()
        {
            if (Accept('-')) return new Negate(ParseUnary());
            if (Accept('+')) return ParseUnary();
            return ParsePower();
        }

        private Node ParsePower()
        {
            var node = ParsePrimary();
            if (Accept('^')) return new Binary('^', node, ParseUnary());
            return node;
        }

        private Node ParsePrimary()
        {
            SkipSpace();
            if (_pos >= text.Length) throw Error("the expression ends too early");
            char c = text[_pos];
            if (c == '(')
            {
                _pos++;
                var inner = ParseSum();
                Expect(')');
                return inner;
            }
            if (char.IsAsciiDigit(c) || c == '.') return ParseNumber();
            if (char.IsAsciiLetter(c) || c == '_')
            {
                int start = _pos;
                while (_pos < text.Length && (char.IsAsciiLetterOrDigit(text[_pos]) || text[_pos] == '_')) _pos++;
                string name = text[start.._pos];
                SkipSpace();
                if (_pos < text.Length && text[_pos] == '(')
                {
                    if (!FunctionNames.Contains(name)) throw Error($"unknown function '{name}'");
                    _pos++;
                    var args = new List<Node>();
                    if (!Accept(')'))
                    {
                        do args.Add(ParseSum());
                        while (Accept(','));
                        Expect(')');
                    }
                    CheckArity(name, args.Count);
                    return new Call(name, args);
                }
                if (!_names.Contains(name)) _names.Add(name);
                return new Reference(name);
            }
            throw Error($"unexpected '{c}'");
        }

        private Node ParseNumber()
        {
            int start = _pos;
            while (_pos < text.Length && (char.IsAsciiDigit(text[_pos]) || text[_pos] == '.')) _pos++;
            if (_pos < text.Length && (text[_pos] == 'e' || text[_pos] == 'E'))
            {
                int save = _pos;
                _pos++;
                if (_pos < text.Length && (text[_pos] == '+' || text[_pos] == '-')) _pos++;
                if (_pos < text.Length && char.IsAsciiDigit(text[_pos]))
                    while (_pos < text.Length && char.IsAsciiDigit(text[_pos])) _pos++;
                else _pos = save;
            }
            string token = text[start.._pos];
            if (long.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var l)) return new Constant(Num.Int(l));
            if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return new Constant(Num.Float(d));
            throw Error($"'{token}' is not a number");
        }

        private static void CheckArity(string name, int count)
        {
            bool ok = name switch
            {
                "min" or "max" => count >= 1,
                "pow" => count == 2,
                "log" or "round" => count is 1 or 2,
                _ => count == 1,
            };
            if (!ok) throw new FormatException($"{name}() does not take {count} argument(s)");
        }

        private bool Accept(char c)
        {
            SkipSpace();
            if (_pos < text.Length && text[_pos] == c)
            {
                _pos++;
                return true;
            }
            return false;
        }

        private void Expect(char c)
        {
            if (!Accept(c)) throw Error(_pos < text.Length ? $"expected '{c}' but found '{text[_pos]}'" : $"expected '{c}' at the end");
        }

        private void SkipSpace()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++;
        }

        private FormatException Error(string what) => new($"{what} at position {_pos + 1}");
    }
}
