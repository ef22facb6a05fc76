using System.Reflection;
using System.Reflection.Emit;
using TorchTrials.Runner.Spec;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Trainables;

/// <summary>Issue 11, item 3: an assembly loaded for its trainables that yields none is reported, not silently skipped.</summary>
public class TrainableRegistryTests
{
    /// <summary>Writes a real dll holding <c>MyModels.Mlp : Trainable</c> without [Trainable], as a researcher's first build would.</summary>
    private static string WriteAssemblyWithoutAttribute(string directory, string name)
    {
        var builder = new PersistedAssemblyBuilder(new AssemblyName(name), typeof(object).Assembly);
        var module = builder.DefineDynamicModule(name);
        var type = module.DefineType("MyModels.Mlp", TypeAttributes.Public | TypeAttributes.Class, typeof(Trainable));
        type.DefineDefaultConstructor(MethodAttributes.Public);
        const MethodAttributes Override = MethodAttributes.Public | MethodAttributes.Virtual | MethodAttributes.HideBySig;
        var setup = type.DefineMethod(nameof(Trainable.Setup), Override, typeof(void), new[] { typeof(TrialConfig) });
        setup.GetILGenerator().Emit(OpCodes.Ret);
        var step = type.DefineMethod(nameof(Trainable.Step), Override, typeof(Metrics), Type.EmptyTypes);
        var il = step.GetILGenerator();
        il.Emit(OpCodes.Newobj, typeof(Metrics).GetConstructor(Type.EmptyTypes)!);
        il.Emit(OpCodes.Ret);
        type.CreateType();
        var path = Path.Combine(directory, name + ".dll");
        builder.Save(path);
        return path;
    }

    [Fact]
    public void Loading_an_assembly_whose_trainable_lacks_the_attribute_names_the_class_to_mark()
    {
        using var temp = new TempDir();

        // Given a dll whose only Trainable subclass has no [Trainable]
        var path = WriteAssemblyWithoutAttribute(temp.Path, "NoAttributeModels");

        // When a registry loads it
        var error = Assert.Throws<InvalidOperationException>(() => new TrainableRegistry().RegisterAssemblyFile(path));

        // Then the error says nothing was found and which class to mark
        Assert.Equal("loaded NoAttributeModels.dll: 0 trainables; add [Trainable(\"name\")] to MyModels.Mlp", error.Message);
    }

    [Fact]
    public void A_spec_naming_such_an_assembly_fails_validation_on_trainable_assembly_with_that_message()
    {
        using var temp = new TempDir();

        // Given a spec that loads the dll for a trainable it names
        WriteAssemblyWithoutAttribute(temp.Path, "NoAttributeSpecModels");
        var spec = "trainable: {name: mlp, assembly: NoAttributeSpecModels.dll}\nmetric: score\nmode: max\n";

        // When the spec is read
        var error = Assert.Throws<SpecValidationException>(() => SweepPlan.Parse(spec, Path.Combine(temp.Path, "sweep.yaml")));

        // Then its one-line error on trainable.assembly says what to add, rather than only that 'mlp' is unknown
        Assert.Contains(error.Errors, e => e.Path == "trainable.assembly"
            && e.Message.Contains("loaded NoAttributeSpecModels.dll: 0 trainables; add [Trainable(\"name\")] to MyModels.Mlp", StringComparison.Ordinal));
    }
}
