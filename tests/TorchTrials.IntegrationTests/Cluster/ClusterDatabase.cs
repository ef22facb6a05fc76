using System.Runtime.CompilerServices;
using Npgsql;
using TorchTrials.Cluster;

namespace TorchTrials.IntegrationTests.Cluster;

/// <summary>
/// The PostgreSQL database the cluster tests share (issue 14): <c>.ci/run</c> starts a private server with an empty
/// database and names it in <see cref="Variable"/>; <see cref="OpenAsync"/> applies the membership schema. Tests share the tables, so each one takes its own
/// cluster ids from <see cref="NewClusterId"/>, and disposing removes every membership row under those ids.
/// </summary>
public sealed class ClusterDatabase : IAsyncDisposable
{
    public const string Variable = "TORCHTRIALS_TEST_POSTGRES";

    public const string SkipReason = "PostgreSQL not available: set " + Variable + " (.ci/run starts a private server)";

    // OrleansMembershipVersionTable.DeploymentId is varchar(150).
    private const int MaxClusterIdLength = 150;

    private readonly List<string> _clusterIds = [];
    private bool _disposed;

    private ClusterDatabase(string connectionString)
    {
        ConnectionString = connectionString;
        DataSource = NpgsqlDataSource.Create(connectionString);
    }

    /// <summary>The connection string from <see cref="Variable"/>, for an Orleans silo's <c>AdoNetClusteringSiloOptions</c> too.</summary>
    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>Why the cluster tests cannot run with this value of <see cref="Variable"/>, or null when they can.</summary>
    public static string? WhyUnavailable(string? variableValue) => string.IsNullOrWhiteSpace(variableValue) ? SkipReason : null;

    public static string? WhyUnavailable() => WhyUnavailable(Environment.GetEnvironmentVariable(Variable));

    /// <summary>
    /// The database named by <see cref="Variable"/>, with the membership schema applied (<see cref="ClusterSchema.EnsureAsync"/>,
    /// as every worker and controller applies it); a test reaches this only through <see cref="PostgresFactAttribute"/>.
    /// </summary>
    public static async Task<ClusterDatabase> OpenAsync()
    {
        var connectionString = Environment.GetEnvironmentVariable(Variable);
        if (WhyUnavailable(connectionString) is { } why) throw new InvalidOperationException(why);
        await ClusterSchema.EnsureAsync(connectionString!);
        return new ClusterDatabase(connectionString!);
    }

    /// <summary>
    /// A cluster id (Orleans' deployment id, the key of every membership row) that no other test, and no earlier run
    /// against the same database, uses: the test's name for reading the tables, then a fresh GUID.
    /// </summary>
    public string NewClusterId([CallerMemberName] string test = "")
    {
        var name = new string([.. test.Select(c => char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '-')]);
        var unique = Guid.NewGuid().ToString("N");
        var id = $"{name[..Math.Min(name.Length, MaxClusterIdLength - unique.Length - 1)]}-{unique}";
        lock (_clusterIds) _clusterIds.Add(id);
        return id;
    }

    /// <summary>
    /// The cluster text a worker or controller takes (<c>--cluster</c>, spec key <c>cluster</c>):
    /// <c>postgres://USER:PASSWORD@HOST:PORT/DATABASE?cluster=ID</c> for this database and <paramref name="clusterId"/>.
    /// </summary>
    public string ClusterText(string clusterId) => ClusterText(ConnectionString, clusterId);

    public static string ClusterText(string connectionString, string clusterId)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var user = Uri.EscapeDataString(builder.Username ?? "");
        var password = builder.Password is { } p ? ":" + Uri.EscapeDataString(p) : "";
        return $"postgres://{user}{password}@{builder.Host}:{builder.Port}/{Uri.EscapeDataString(builder.Database ?? "")}"
             + $"?cluster={Uri.EscapeDataString(clusterId)}";
    }

    /// <summary>Removes the rows under this test's cluster ids; a second call does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        string[] ids;
        lock (_clusterIds) ids = [.. _clusterIds];
        if (ids.Length > 0)
        {
            // Rows first: OrleansMembershipTable references the version table.
            await using var command = DataSource.CreateCommand(
                "DELETE FROM OrleansMembershipTable WHERE DeploymentId = ANY(@ids); " +
                "DELETE FROM OrleansMembershipVersionTable WHERE DeploymentId = ANY(@ids);");
            command.Parameters.AddWithValue("ids", ids);
            try
            {
                await command.ExecuteNonQueryAsync();
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
            {
                // No membership tables, so no rows: the test's own failure says why, this must not replace it.
            }
        }
        await DataSource.DisposeAsync();
    }
}

/// <summary>
/// A database of its own on the server <see cref="ClusterDatabase.Variable"/> names, created empty (no tables) for one
/// test and dropped when it is disposed, connections still open included.
/// </summary>
public sealed class ScratchDatabase : IAsyncDisposable
{
    private readonly string _serverConnectionString;
    private readonly string _name;

    private ScratchDatabase(string serverConnectionString, string name, string connectionString)
    {
        _serverConnectionString = serverConnectionString;
        _name = name;
        ConnectionString = connectionString;
    }

    public string ConnectionString { get; }

    public static async Task<ScratchDatabase> CreateAsync()
    {
        var shared = Environment.GetEnvironmentVariable(ClusterDatabase.Variable);
        if (ClusterDatabase.WhyUnavailable(shared) is { } why) throw new InvalidOperationException(why);
        var server = new NpgsqlConnectionStringBuilder(shared) { Database = "postgres", Pooling = false }.ConnectionString;
        var name = "torchtrials_scratch_" + Guid.NewGuid().ToString("N");
        await using (var connection = new NpgsqlConnection(server))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await create.ExecuteNonQueryAsync();
        }
        return new ScratchDatabase(server, name, new NpgsqlConnectionStringBuilder(shared) { Database = name }.ConnectionString);
    }

    /// <summary>The names of the tables in the database's schema, lower case.</summary>
    public async Task<List<string>> TablesAsync()
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name", connection);
        var names = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) names.Add(reader.GetString(0));
        return names;
    }

    public string ClusterText(string clusterId) => ClusterDatabase.ClusterText(ConnectionString, clusterId);

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(_serverConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }
}

/// <summary>A test that needs the cluster database; skipped with <see cref="ClusterDatabase.SkipReason"/> where it is not set.</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (ClusterDatabase.WhyUnavailable() is { } why) Skip = why;
    }
}

/// <summary>The Redis server of the Redis clustering test (.ci/run starts one and exports its HOST:PORT).</summary>
public static class ClusterRedis
{
    public const string Variable = "TORCHTRIALS_TEST_REDIS";

    public static string? Address => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } address ? address : null;

    /// <summary>A cluster of its own on the test's Redis, by a cluster id no other test uses.</summary>
    public static string ClusterText([System.Runtime.CompilerServices.CallerMemberName] string test = "") =>
        $"redis://{Address}?cluster={Uri.EscapeDataString(test[..Math.Min(test.Length, 60)] + "-" + Guid.NewGuid().ToString("N"))}";
}

/// <summary>A fact that needs Redis: skipped, saying why, when TORCHTRIALS_TEST_REDIS is not set.</summary>
public sealed class RedisFactAttribute : FactAttribute
{
    public RedisFactAttribute()
    {
        if (ClusterRedis.Address is null) Skip = "Redis not available: set " + ClusterRedis.Variable + " (.ci/run starts a private server)";
    }
}
