using Npgsql;

namespace TorchTrials.Cluster;

/// <summary>
/// The PostgreSQL tables and queries Orleans' ADO.NET clustering runs on (TorchTrials' own schema, ClusterSchema.sql,
/// embedded in this assembly): created by workers and controllers themselves, so a cluster needs nothing but an empty
/// database it may create tables in.
/// </summary>
public static class ClusterSchema
{
    /// <summary>The resource name of the schema script.</summary>
    internal const string ResourceName = "TorchTrials.Cluster.ClusterSchema.sql";

    // Any constant: every TorchTrials process applying the schema to one database takes this advisory lock first.
    private const long LockKey = 0x5454_436C_7573_7472; // "TTClustr"

    private static readonly Lazy<string> Script = new(() =>
    {
        using var stream = typeof(ClusterSchema).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the assembly has no resource {ResourceName}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>The schema script: CREATE TABLE IF NOT EXISTS for the membership tables, then the query texts by key.</summary>
    public static string Sql => Script.Value;

    /// <summary>
    /// Creates the membership tables where missing and writes the query rows, in one transaction under an advisory lock:
    /// idempotent, and safe when several workers and controllers run it at once. Leaves existing membership rows alone.
    /// </summary>
    public static async Task EnsureAsync(string npgsqlConnectionString, CancellationToken cancel = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(npgsqlConnectionString);
        await using var connection = new NpgsqlConnection(npgsqlConnectionString);
        await connection.OpenAsync(cancel).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancel).ConfigureAwait(false);
        await using (var take = new NpgsqlCommand("SELECT pg_advisory_xact_lock(@key)", connection, transaction))
        {
            take.Parameters.AddWithValue("key", LockKey);
            await take.ExecuteNonQueryAsync(cancel).ConfigureAwait(false);
        }
        await using (var apply = new NpgsqlCommand(Sql, connection, transaction))
        {
            await apply.ExecuteNonQueryAsync(cancel).ConfigureAwait(false);
        }
        await transaction.CommitAsync(cancel).ConfigureAwait(false);
    }
}
