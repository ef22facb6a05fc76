using System.Reflection;
using TorchTrials.Gpu;

namespace TorchTrials.Trainables;

/// <summary>A trainable known by name: how to build it and the resources it may declare for itself.</summary>
public sealed class RegisteredTrainable
{
    public RegisteredTrainable(string name, Func<Trainable?> factory, Func<TrialConfig, Resources?>? defaultResources = null, string description = "",
        Func<string?>? missingPrerequisite = null, Func<TrialConfig, string?>? fusionKey = null,
        Func<FusedArrayContext, FusedTrainable>? createFusedArray = null)
    {
        if ((fusionKey is null) != (createFusedArray is null))
            throw new ArgumentException($"trainable '{name}': a fusion key and an array factory come together (IFusableTrainable)");
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Factory = factory;
        DefaultResources = defaultResources;
        Description = description;
        MissingPrerequisite = missingPrerequisite;
        FusionKey = fusionKey;
        CreateFusedArray = createFusedArray;
    }

    public string Name { get; }

    public Func<Trainable?> Factory { get; }

    /// <summary>Ray's default_resource_request: resources the trainable chooses from its config, or null.</summary>
    public Func<TrialConfig, Resources?>? DefaultResources { get; }

    public string Description { get; }

    /// <summary>What the trainable needs and lacks, in one line (<see cref="IHasPrerequisites"/>), or null.</summary>
    public Func<string?>? MissingPrerequisite { get; }

    /// <summary>The trainable's <see cref="IFusableTrainable.FusionKey"/>, or null when it never trains fused.</summary>
    public Func<TrialConfig, string?>? FusionKey { get; }

    /// <summary>The trainable's <see cref="IFusableTrainable.CreateArray"/>, or null when it never trains fused.</summary>
    public Func<FusedArrayContext, FusedTrainable>? CreateFusedArray { get; }

    /// <summary>True when trials of this config may share a fused array.</summary>
    public bool CanFuse(TrialConfig config) => FusionKey?.Invoke(config) is not null;

    /// <summary>Builds an instance; throws naming the trainable when its factory yields nothing.</summary>
    public Trainable Create() =>
        Factory() ?? throw new InvalidOperationException(
            $"Invalid trainable: {Name}. Its registration produced no trainable; make sure it was registered with a working factory.");
}

/// <summary>
/// Trainables by name, so a sweep spec can name them. An instance, not a global: a Tuner or CLI run owns one.
/// <see cref="CreateDefault"/> holds the built-ins; users add theirs with <see cref="Register{T}"/>,
/// <see cref="RegisterFunction"/>, or <see cref="RegisterAssembly"/> (classes and static methods marked [Trainable]).
/// </summary>
public sealed class TrainableRegistry
{
    private readonly Dictionary<string, RegisteredTrainable> _entries = new(StringComparer.Ordinal);

    /// <summary>A registry with the built-in trainables.</summary>
    public static TrainableRegistry CreateDefault()
    {
        var registry = new TrainableRegistry();
        registry.RegisterAssembly(typeof(TrainableRegistry).Assembly);
        return registry;
    }

    public IReadOnlyCollection<RegisteredTrainable> Entries => _entries.Values;

    public TrainableRegistry Register(RegisteredTrainable entry)
    {
        _entries[entry.Name] = entry;
        return this;
    }

    public TrainableRegistry Register(string name, Func<Trainable?> factory, Func<TrialConfig, Resources?>? defaultResources = null, string description = "") =>
        Register(new RegisteredTrainable(name, factory, defaultResources, description));

    public TrainableRegistry Register<T>(string name, string description = "") where T : Trainable, new() =>
        Register(new RegisteredTrainable(name, () => new T(), DefaultResourcesOf(typeof(T)), description, PrerequisiteOf(typeof(T)),
            FusionKeyOf(typeof(T)), FusedArrayFactoryOf(typeof(T))));

    public TrainableRegistry RegisterFunction(string name, TrainFunction function, Func<TrialConfig, Resources?>? defaultResources = null, string description = "") =>
        Register(new RegisteredTrainable(name, () => new FunctionTrainable(function), defaultResources, description));

    /// <summary>
    /// Registers every class deriving from <see cref="Trainable"/> and every static TrainFunction-shaped method marked [Trainable].
    /// An assembly that yields none is an error naming the classes that lack the attribute: loading it was meant to add trainables.
    /// </summary>
    public TrainableRegistry RegisterAssembly(Assembly assembly)
    {
        int registered = 0;
        var unmarked = new List<string>();
        foreach (var type in assembly.GetTypes())
        {
            bool isTrainableClass = typeof(Trainable).IsAssignableFrom(type) && !type.IsAbstract;
            if (isTrainableClass && type.GetCustomAttribute<TrainableAttribute>() is null) unmarked.Add(type.FullName ?? type.Name);
            if (type.GetCustomAttribute<TrainableAttribute>() is { } attr && isTrainableClass)
            {
                var ctor = type.GetConstructor(Type.EmptyTypes)
                    ?? throw new InvalidOperationException($"trainable {type.FullName} ('{attr.Name}') needs a public parameterless constructor");
                Register(new RegisteredTrainable(attr.Name, () => (Trainable)ctor.Invoke(null), DefaultResourcesOf(type), attr.Description, PrerequisiteOf(type),
                    FusionKeyOf(type), FusedArrayFactoryOf(type)));
                registered++;
            }
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static))
            {
                if (method.GetCustomAttribute<TrainableAttribute>() is not { } fattr) continue;
                var function = (TrainFunction)Delegate.CreateDelegate(typeof(TrainFunction), method, throwOnBindFailure: false)!
                    ?? throw new InvalidOperationException($"[Trainable(\"{fattr.Name}\")] {type.FullName}.{method.Name} must have the TrainFunction signature");
                RegisterFunction(fattr.Name, function, description: fattr.Description);
                registered++;
            }
        }
        if (registered == 0)
        {
            var file = assembly.Location.Length > 0 ? Path.GetFileName(assembly.Location) : assembly.GetName().Name + ".dll";
            throw new InvalidOperationException(unmarked.Count > 0
                ? $"loaded {file}: 0 trainables; add [Trainable(\"name\")] to {string.Join(", ", unmarked.Order(StringComparer.Ordinal))}"
                : $"loaded {file}: 0 trainables; add [Trainable(\"name\")] to a class deriving from Trainable or to a static TrainFunction-shaped method");
        }
        return this;
    }

    /// <summary>Loads an assembly from a file path and registers its trainables.</summary>
    public TrainableRegistry RegisterAssemblyFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"trainable assembly '{path}' does not exist", path);
        return RegisterAssembly(Assembly.LoadFrom(Path.GetFullPath(path)));
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public bool TryGet(string name, out RegisteredTrainable entry) => _entries.TryGetValue(name, out entry!);

    /// <summary>The entry for <paramref name="name"/>, or an error listing what is registered.</summary>
    public RegisteredTrainable Get(string name) =>
        _entries.TryGetValue(name, out var entry)
            ? entry
            : throw new KeyNotFoundException($"unknown trainable '{name}' (registered: {string.Join(", ", _entries.Keys.Order(StringComparer.Ordinal))})");

    private static Func<string?>? PrerequisiteOf(Type type)
    {
        if (!type.GetInterfaces().Contains(typeof(IHasPrerequisites))) return null;
        var method = type.GetMethod(nameof(IHasPrerequisites.MissingPrerequisite), BindingFlags.Public | BindingFlags.Static | BindingFlags.FlattenHierarchy, Type.EmptyTypes);
        return method is null ? null : () => (string?)method.Invoke(null, null);
    }

    private static Func<TrialConfig, Resources?>? DefaultResourcesOf(Type type)
    {
        if (!type.GetInterfaces().Contains(typeof(IHasDefaultResources))) return null;
        var method = type.GetMethod(nameof(IHasDefaultResources.DefaultResourceRequest), BindingFlags.Public | BindingFlags.Static, new[] { typeof(TrialConfig) });
        return method is null ? null : config => (Resources?)method.Invoke(null, new object[] { config });
    }

    private static Func<TrialConfig, string?>? FusionKeyOf(Type type)
    {
        if (!type.GetInterfaces().Contains(typeof(IFusableTrainable))) return null;
        var method = type.GetMethod(nameof(IFusableTrainable.FusionKey), BindingFlags.Public | BindingFlags.Static, new[] { typeof(TrialConfig) });
        return method is null ? null : config => (string?)method.Invoke(null, new object[] { config });
    }

    private static Func<FusedArrayContext, FusedTrainable>? FusedArrayFactoryOf(Type type)
    {
        if (!type.GetInterfaces().Contains(typeof(IFusableTrainable))) return null;
        var method = type.GetMethod(nameof(IFusableTrainable.CreateArray), BindingFlags.Public | BindingFlags.Static, new[] { typeof(FusedArrayContext) });
        return method is null ? null : context => (FusedTrainable)method.Invoke(null, new object[] { context })!;
    }
}
