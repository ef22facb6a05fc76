using System.Collections.Immutable;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>
/// One entry of a search space that is not a constant (Ray Tune's <c>Domain</c>, <c>ray/tune/search/sample.py</c>).
/// Factory methods build every kind; a domain is checked when it is put into a <see cref="SearchSpace"/>, so that the
/// error can name its key.
/// </summary>
public abstract class Domain
{
    /// <summary>The spec keyword: uniform, loguniform, quniform, qloguniform, randint, qrandint, lograndint, qlograndint, randn, qrandn, choice, grid or sample_from.</summary>
    public abstract string Kind { get; }

    /// <summary>True for grid search values (enumerated by the variant generator, categorical for model-based searchers).</summary>
    public virtual bool IsGrid => false;

    /// <summary>True for sample_from: computed from other values, never searched.</summary>
    public virtual bool IsFunction => false;

    /// <summary>True when <paramref name="value"/> is one this domain can produce.</summary>
    public abstract bool IsValid(object? value);

    /// <summary>What is wrong with this domain, one message per problem (without the key, which the space adds).</summary>
    internal abstract IEnumerable<string> Problems();

    /// <summary>Uniform float in [low, high) (Ray's <c>tune.uniform</c>).</summary>
    public static FloatDomain Uniform(double low, double high) => new("uniform", low, high, q: null, log: false, logBase: 10);

    /// <summary>Log-uniform float in [low, high) (Ray's <c>tune.loguniform</c>); the base is kept for display, sampling uses natural logs (the distribution does not depend on it).</summary>
    public static FloatDomain LogUniform(double low, double high, double logBase = 10) => new("loguniform", low, high, q: null, log: true, logBase);

    /// <summary>Uniform over the multiples of <paramref name="q"/> in [low, high], both ends included (Ray's <c>tune.quniform</c>; low and high must be multiples of q, as Ray checks).</summary>
    public static FloatDomain QUniform(double low, double high, double q) => new("quniform", low, high, q, log: false, logBase: 10);

    /// <summary>Log-uniform, rounded to a multiple of <paramref name="q"/> in [low, high] (Ray's <c>tune.qloguniform</c>).</summary>
    public static FloatDomain QLogUniform(double low, double high, double q, double logBase = 10) => new("qloguniform", low, high, q, log: true, logBase);

    /// <summary>Uniform integer in [low, high): the upper bound is exclusive, as Ray's <c>tune.randint</c>.</summary>
    public static IntegerDomain RandInt(long low, long high) => new("randint", low, high, 1, log: false, logBase: 10);

    /// <summary>Uniform over the multiples of <paramref name="q"/> in [low, high]: the upper bound is inclusive, as Ray's <c>tune.qrandint</c>.</summary>
    public static IntegerDomain QRandInt(long low, long high, long q = 1) => new("qrandint", low, high, q, log: false, logBase: 10);

    /// <summary>Log-uniform integer in [low, high): upper bound exclusive, as Ray's <c>tune.lograndint</c>.</summary>
    public static IntegerDomain LogRandInt(long low, long high, double logBase = 10) => new("lograndint", low, high, 1, log: true, logBase);

    /// <summary>Log-uniform integer rounded to a multiple of <paramref name="q"/> in [low, high], upper bound inclusive, as Ray's <c>tune.qlograndint</c>.</summary>
    public static IntegerDomain QLogRandInt(long low, long high, long q, double logBase = 10) => new("qlograndint", low, high, q, log: true, logBase);

    /// <summary>Normal with the given mean and standard deviation (Ray's <c>tune.randn</c>).</summary>
    public static NormalDomain RandN(double mean = 0, double sd = 1) => new("randn", mean, sd, q: null);

    /// <summary>Normal, rounded to a multiple of <paramref name="q"/> (Ray's <c>tune.qrandn</c>).</summary>
    public static NormalDomain QRandN(double mean, double sd, double q) => new("qrandn", mean, sd, q);

    /// <summary>One of the given values, uniformly (Ray's <c>tune.choice</c>); values may be any config values.</summary>
    public static CategoricalDomain Choice(params object?[] values) => new(values, grid: false);

    /// <summary>Every one of the given values, in a cross product with the other grid entries (Ray's <c>tune.grid_search</c>).</summary>
    public static CategoricalDomain Grid(params object?[] values) => new(values, grid: true);

    /// <summary><see cref="Choice"/> over the items of a collection (a collection passed to Choice is one value).</summary>
    public static CategoricalDomain ChoiceOf<T>(IEnumerable<T> values) => new(values.Cast<object?>(), grid: false);

    /// <summary><see cref="Grid"/> over the items of a collection (a collection passed to Grid is one value).</summary>
    public static CategoricalDomain GridOf<T>(IEnumerable<T> values) => new(values.Cast<object?>(), grid: true);

    /// <summary>
    /// A value computed from the other values of the same config (Ray's <c>tune.sample_from</c>). The function sees the
    /// values resolved so far; reading one that is not resolved yet defers it to a later pass, as Ray does.
    /// </summary>
    public static FunctionDomain SampleFrom(Func<TrialConfig, object?> function) => new(function);

    /// <summary>
    /// A value computed by an arithmetic expression over other keys: + - * / ^, parentheses, numbers, and min, max, log,
    /// log10, exp, sqrt, pow, round, floor, ceil, int, abs. Example: <c>"2 ^ depth * width"</c>.
    /// </summary>
    public static FunctionDomain SampleFrom(string expression) => new(expression);
}

/// <summary>
/// A domain that maps each of its values to a point of the unit interval and back (the ML.NET SearchSpace idea): the
/// mapping is linear in the domain's natural scale (log scale for log domains, the normal CDF for normal domains), so a
/// searcher that draws u uniformly from [0, 1) draws from the domain's own distribution, and model-based searchers only
/// ever see [0, 1)^d.
/// </summary>
public abstract class UnitDomain : Domain
{
    /// <summary>The point of [0, 1] that stands for <paramref name="value"/>; throws naming the value when the domain cannot hold it.</summary>
    public abstract double ToUnit(object? value);

    /// <summary>The value the point <paramref name="u"/> of [0, 1] stands for (clamped into the interval first).</summary>
    public abstract object? FromUnit(double u);

    /// <summary>
    /// When positive, the unit interval is cut into this many equal cells holding one value each, value i at the centre
    /// (i + 0.5) / n (integers, quantized linear floats, categories); zero for continuous mappings.
    /// </summary>
    public virtual long Cells => 0;

    /// <summary>True for choice and grid: values have no order, searchers must treat them as categories.</summary>
    public virtual bool IsCategorical => false;

    /// <summary>True when the domain holds exactly one value (nothing to search).</summary>
    public virtual bool IsSingleValued => false;

    /// <summary>A value drawn from the domain's distribution.</summary>
    public object? Sample(SearchRandom random) => FromUnit(random.NextDouble());

    /// <summary>Where <paramref name="u"/> lands after a round trip through the domain's values: the point that stands for the value it maps to.</summary>
    public double Snap(double u) => ToUnit(FromUnit(u));

    private protected static double Clamp01(double u) => double.IsNaN(u) ? 0 : Math.Clamp(u, 0.0, 1.0);

    private protected static long CellOf(double u, long n) => Math.Min((long)Math.Floor(Clamp01(u) * n), n - 1);

    private protected double Number(object? value)
    {
        if (!ConfigValues.TryGetNumber(value, out var d))
            throw new ArgumentException($"{Kind} cannot hold '{TrialConfig.Format(value)}': not a number");
        return d;
    }

    /// <summary>k * q written without binary noise where q has few decimals (k = 3, q = 0.1 gives 0.3, not 0.30000000000000004).</summary>
    private protected static double Tidy(double k, double q)
    {
        double v = k * q;
        if (Math.Abs(q) is >= 1e-12 and < 1e12)
        {
            int scale = (decimal.GetBits((decimal)q)[3] >> 16) & 0xFF;
            if (scale is > 0 and <= 15) v = Math.Round(v, scale, MidpointRounding.ToEven);
        }
        return v;
    }

    private protected static bool IsMultiple(double x, double q)
    {
        double r = x / q;
        double rounded = Math.Round(r);
        // Python's math.isclose with its default rel_tol of 1e-9, as Ray's Float.quantized uses.
        return Math.Abs(r - rounded) <= 1e-9 * Math.Max(Math.Abs(r), Math.Abs(rounded));
    }
}

/// <summary>Floats: uniform, loguniform, quniform, qloguniform (Ray's <c>Float</c> with its samplers).</summary>
public sealed class FloatDomain : UnitDomain
{
    private readonly string _kind;
    private readonly double _tLow, _tHigh;
    private readonly long _k0, _count;

    internal FloatDomain(string kind, double low, double high, double? q, bool log, double logBase)
    {
        _kind = kind;
        Low = low;
        High = high;
        Q = q;
        IsLog = log;
        LogBase = logBase;
        if (q is { } step && step > 0 && double.IsFinite(low) && double.IsFinite(high))
        {
            _k0 = (long)Math.Round(low / step);
            _count = Math.Max(1, (long)Math.Round(high / step) - _k0 + 1);
        }
        if (log)
        {
            // Quantized log floats widen the range by half a step so every multiple gets a whole cell, as Optuna does for integers.
            double half = q is { } s ? s / 2 : 0;
            _tLow = Math.Log(low - half);
            _tHigh = Math.Log(high + half);
        }
    }

    public override string Kind => _kind;

    public double Low { get; }

    public double High { get; }

    public double? Q { get; }

    public bool IsLog { get; }

    public double LogBase { get; }

    public override long Cells => Q is not null && !IsLog ? _count : 0;

    public override bool IsSingleValued => Q is not null && _count == 1;

    internal override IEnumerable<string> Problems()
    {
        if (!double.IsFinite(Low) || !double.IsFinite(High))
        {
            yield return $"{Kind} bounds must be finite numbers, got [{ConfigValues.Num(Low)}, {ConfigValues.Num(High)}]";
            yield break;
        }
        if (Q is { } q && !(q > 0 && double.IsFinite(q))) yield return $"{Kind} q must be positive, got {ConfigValues.Num(q)}";
        if (IsLog && Low <= 0) yield return $"{Kind} bounds must be positive, got low {ConfigValues.Num(Low)}";
        if (Low >= High) yield return $"{Kind} low ({ConfigValues.Num(Low)}) must be below high ({ConfigValues.Num(High)})";
        if (IsLog && !(LogBase > 0 && LogBase != 1 && double.IsFinite(LogBase))) yield return $"{Kind} base must be positive and not 1, got {ConfigValues.Num(LogBase)}";
        if (Q is { } step && step > 0)
        {
            if (!IsMultiple(Low, step)) yield return $"{Kind} low {ConfigValues.Num(Low)} is not a multiple of q {ConfigValues.Num(step)}";
            if (!IsMultiple(High, step)) yield return $"{Kind} high {ConfigValues.Num(High)} is not a multiple of q {ConfigValues.Num(step)}";
        }
    }

    public override bool IsValid(object? value)
    {
        if (!ConfigValues.TryGetNumber(value, out var v) || v < Low || v > High) return false;
        return Q is not { } q || IsMultiple(v, q);
    }

    public override double ToUnit(object? value)
    {
        double v = Number(value);
        if (Q is { } q && !IsLog)
        {
            long k = Math.Clamp((long)Math.Round(v / q) - _k0, 0, _count - 1);
            return (k + 0.5) / _count;
        }
        if (IsLog) return Clamp01((Math.Log(v) - _tLow) / (_tHigh - _tLow));
        return Clamp01((v - Low) / (High - Low));
    }

    public override object? FromUnit(double u)
    {
        u = Clamp01(u);
        if (Q is { } q)
        {
            if (!IsLog) return Tidy(_k0 + CellOf(u, _count), q);
            double x = Math.Exp(_tLow + u * (_tHigh - _tLow));
            return Tidy(Math.Clamp(Math.Round(x / q), _k0, _k0 + _count - 1), q);
        }
        if (IsLog) return Math.Clamp(Math.Exp(_tLow + u * (_tHigh - _tLow)), Low, High);
        return Math.Min(Low + u * (High - Low), High);
    }

    public override string ToString() => Q is { } q
        ? $"{Kind}({ConfigValues.Num(Low)}, {ConfigValues.Num(High)}, q={ConfigValues.Num(q)})"
        : $"{Kind}({ConfigValues.Num(Low)}, {ConfigValues.Num(High)})";
}

/// <summary>
/// Integers: randint and lograndint (upper bound exclusive), qrandint and qlograndint (upper bound inclusive, multiples
/// of q), as Ray's <c>Integer</c>. Linear integers are uniform over their values; log integers are Optuna 3.1's
/// <c>IntDistribution(log=True)</c>: log-uniform over [value - q/2, value + q/2] cells, rounded.
/// </summary>
public sealed class IntegerDomain : UnitDomain
{
    private readonly string _kind;
    private readonly long _first, _last, _count;
    private readonly double _tLow, _tHigh;

    internal IntegerDomain(string kind, long low, long high, long q, bool log, double logBase)
    {
        _kind = kind;
        Low = low;
        High = high;
        Q = q;
        IsLog = log;
        LogBase = logBase;
        bool inclusive = kind is "qrandint" or "qlograndint";
        if (q > 0)
        {
            _first = CeilDiv(low, q) * q;
            _last = inclusive ? FloorDiv(high, q) * q : high - 1;
            _count = _last >= _first ? (_last - _first) / q + 1 : 0;
        }
        if (log && _count > 0 && _first > 0)
        {
            _tLow = Math.Log(_first - q / 2.0);
            _tHigh = Math.Log(_last + q / 2.0);
        }
    }

    public override string Kind => _kind;

    public long Low { get; }

    public long High { get; }

    public long Q { get; }

    public bool IsLog { get; }

    public double LogBase { get; }

    /// <summary>The smallest value the domain produces.</summary>
    public long First => _first;

    /// <summary>The largest value the domain produces.</summary>
    public long Last => _last;

    public override long Cells => IsLog ? 0 : _count;

    public override bool IsSingleValued => _count == 1;

    internal override IEnumerable<string> Problems()
    {
        bool exclusive = Kind is "randint" or "lograndint";
        if (Q <= 0) yield return $"{Kind} q must be positive, got {Q}";
        if (IsLog && Low <= 0) yield return $"{Kind} bounds must be positive, got low {Low}";
        if (exclusive && Low >= High) yield return $"{Kind} low ({Low}) must be below high ({High}); high is exclusive";
        else if (!exclusive && Low > High) yield return $"{Kind} low ({Low}) must not exceed high ({High})";
        else if (Q > 0 && _count == 0) yield return $"{Kind} has no multiple of q {Q} in [{Low}, {High}]";
        if (IsLog && !(LogBase > 0 && LogBase != 1 && double.IsFinite(LogBase))) yield return $"{Kind} base must be positive and not 1, got {ConfigValues.Num(LogBase)}";
    }

    public override bool IsValid(object? value) =>
        ConfigValues.TryGetNumber(value, out var v) && v == Math.Floor(v) && v >= _first && v <= _last && ((long)v - _first) % Q == 0;

    public override double ToUnit(object? value)
    {
        double v = Number(value);
        if (IsLog) return Clamp01((Math.Log(v) - _tLow) / (_tHigh - _tLow));
        long k = Math.Clamp((long)Math.Round((v - _first) / Q), 0, _count - 1);
        return (k + 0.5) / _count;
    }

    public override object? FromUnit(double u)
    {
        u = Clamp01(u);
        if (IsLog)
        {
            double x = Math.Exp(_tLow + u * (_tHigh - _tLow));
            return Math.Clamp((long)Math.Round(x / Q) * Q, _first, _last);
        }
        return _first + CellOf(u, _count) * Q;
    }

    public override string ToString() => Q == 1 ? $"{Kind}({Low}, {High})" : $"{Kind}({Low}, {High}, q={Q})";

    private static long FloorDiv(long a, long b) => a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0);

    private static long CeilDiv(long a, long b) => -FloorDiv(-a, b);
}

/// <summary>Normal floats: randn and qrandn (Ray's <c>Float.normal</c>). The unit mapping is the normal CDF.</summary>
public sealed class NormalDomain : UnitDomain
{
    private const double Tiny = 1.0 / (1L << 53);
    private readonly string _kind;

    internal NormalDomain(string kind, double mean, double sd, double? q)
    {
        _kind = kind;
        Mean = mean;
        Sd = sd;
        Q = q;
    }

    public override string Kind => _kind;

    public double Mean { get; }

    public double Sd { get; }

    public double? Q { get; }

    internal override IEnumerable<string> Problems()
    {
        if (!double.IsFinite(Mean)) yield return $"{Kind} mean must be a finite number, got {ConfigValues.Num(Mean)}";
        if (!(Sd > 0 && double.IsFinite(Sd))) yield return $"{Kind} sd must be positive, got {ConfigValues.Num(Sd)}";
        if (Q is { } q && !(q > 0 && double.IsFinite(q))) yield return $"{Kind} q must be positive, got {ConfigValues.Num(q)}";
    }

    public override bool IsValid(object? value) =>
        ConfigValues.TryGetNumber(value, out var v) && double.IsFinite(v) && (Q is not { } q || IsMultiple(v, q));

    public override double ToUnit(object? value) => Clamp01(Gaussian.Cdf((Number(value) - Mean) / Sd));

    public override object? FromUnit(double u)
    {
        double x = Mean + Sd * Gaussian.InverseCdf(Math.Clamp(Clamp01(u), Tiny, 1 - Tiny));
        return Q is { } q ? Tidy(Math.Round(x / q), q) : x;
    }

    public override string ToString() => Q is { } q
        ? $"{Kind}({ConfigValues.Num(Mean)}, {ConfigValues.Num(Sd)}, q={ConfigValues.Num(q)})"
        : $"{Kind}({ConfigValues.Num(Mean)}, {ConfigValues.Num(Sd)})";
}

/// <summary>choice and grid: a list of config values. Value i stands for the point (i + 0.5) / n.</summary>
public sealed class CategoricalDomain : UnitDomain
{
    private readonly bool _grid;
    private readonly string? _normaliseError;

    internal CategoricalDomain(IEnumerable<object?> values, bool grid)
    {
        _grid = grid;
        var list = ImmutableArray.CreateBuilder<object?>();
        foreach (var v in values)
        {
            try
            {
                list.Add(TrialConfig.Normalise(v, grid ? "grid" : "choice"));
            }
            catch (ArgumentException e)
            {
                _normaliseError ??= e.Message;
            }
        }
        Values = list.ToImmutable();
    }

    public override string Kind => _grid ? "grid" : "choice";

    public override bool IsGrid => _grid;

    public ImmutableArray<object?> Values { get; }

    public override long Cells => Values.Length;

    public override bool IsCategorical => true;

    public override bool IsSingleValued => Values.Length == 1;

    internal override IEnumerable<string> Problems()
    {
        if (Values.IsEmpty && _normaliseError is null) yield return $"{Kind} must list at least one value";
        if (_normaliseError is not null) yield return $"{Kind} has a value of unsupported type ({_normaliseError})";
    }

    /// <summary>The position of <paramref name="value"/> in the list, or -1.</summary>
    public int IndexOf(object? value)
    {
        for (int i = 0; i < Values.Length; i++)
            if (ConfigValues.Equal(Values[i], value)) return i;
        return -1;
    }

    public override bool IsValid(object? value) => IndexOf(value) >= 0;

    public override double ToUnit(object? value)
    {
        int i = IndexOf(value);
        if (i < 0) throw new ArgumentException($"{Kind} has no value '{TrialConfig.Format(value)}' (values: {string.Join(", ", Values.Select(TrialConfig.Format))})");
        return (i + 0.5) / Values.Length;
    }

    public override object? FromUnit(double u) => Values[(int)CellOf(u, Values.Length)];

    public override string ToString() => $"{Kind}([{string.Join(", ", Values.Select(TrialConfig.Format))}])";
}

/// <summary>sample_from: a value computed per sample from other values of the config, by an expression or a C# function.</summary>
public sealed class FunctionDomain : Domain
{
    private readonly Func<TrialConfig, object?>? _function;

    internal FunctionDomain(Func<TrialConfig, object?> function) => _function = function;

    internal FunctionDomain(string expression)
    {
        ExpressionText = expression;
        try
        {
            Expression = SampleExpression.Parse(expression);
        }
        catch (FormatException e)
        {
            ParseError = e.Message;
        }
    }

    public override string Kind => "sample_from";

    public override bool IsFunction => true;

    /// <summary>The expression's text, or null for a C# function.</summary>
    public string? ExpressionText { get; }

    internal SampleExpression? Expression { get; }

    internal string? ParseError { get; }

    /// <summary>Keys the expression reads; empty for a C# function (its reads are found at evaluation).</summary>
    public IReadOnlyCollection<string> DependsOn => Expression?.Names ?? (IReadOnlyCollection<string>)Array.Empty<string>();

    internal override IEnumerable<string> Problems()
    {
        if (ParseError is not null) yield return $"sample_from expression '{ExpressionText}' is not valid: {ParseError}";
    }

    public override bool IsValid(object? value) => true;

    /// <summary>The value for a config in which every key this domain reads is resolved.</summary>
    public object? Evaluate(TrialConfig resolved)
    {
        if (_function is not null) return _function(resolved);
        if (Expression is null) throw new InvalidOperationException($"sample_from expression '{ExpressionText}' is not valid: {ParseError}");
        return Expression.Evaluate(resolved);
    }

    public override string ToString() => ExpressionText is null ? "sample_from(<function>)" : $"sample_from(\"{ExpressionText}\")";
}
