using Npgsql;

namespace TorchTrials.IntegrationTests.Cluster;

/// <summary>
/// Issue 14: the PostgreSQL database the cluster tests run Orleans' ADO.NET clustering on. The membership queries are the
/// ones ClusterSchema installs in OrleansQuery, run as Orleans' AdoNetClusteringTable runs them: by key, with its parameter names.
/// </summary>
public class ClusterDatabaseTests
{
    // The keys Orleans.Clustering.AdoNet 10.4.2 loads from OrleansQuery at start (CleanupDefunctSiloEntryKey is optional there).
    internal static readonly string[] MembershipQueryKeys =
    [
        "CleanupDefunctSiloEntriesKey", "DeleteMembershipTableEntriesKey", "GatewaysQueryKey", "InsertMembershipKey",
        "InsertMembershipVersionKey", "MembershipReadAllKey", "MembershipReadRowKey", "UpdateIAmAlivetimeKey",
        "UpdateMembershipKey",
    ];

    [Fact]
    public void WithoutTheVariable_TheClusterTestsAreSkippedSayingHowToGetAServer()
    {
        Assert.Equal("PostgreSQL not available: set TORCHTRIALS_TEST_POSTGRES (.ci/run starts a private server)",
            ClusterDatabase.WhyUnavailable(null));
        Assert.Equal(ClusterDatabase.SkipReason, ClusterDatabase.WhyUnavailable(" "));
        Assert.Null(ClusterDatabase.WhyUnavailable("Host=127.0.0.1;Port=5432;Database=torchtrials_cluster"));
    }

    [Fact]
    public void TheClusterText_NamesTheSameServerUserPasswordAndDatabase_EscapedForAUri()
    {
        var text = ClusterDatabase.ClusterText(
            "Host=127.0.0.1;Port=40123;Database=torchtrials_cluster;Username=torchtrials;Password=p@ss:w/rd", "t-1");

        Assert.Equal("postgres://torchtrials:p%40ss%3Aw%2Frd@127.0.0.1:40123/torchtrials_cluster?cluster=t-1", text);
        var uri = new Uri(text);
        Assert.Equal("p@ss:w/rd", Uri.UnescapeDataString(uri.UserInfo.Split(':', 2)[1]));
        Assert.Equal(40123, uri.Port);
    }

    [PostgresFact]
    public async Task TheDatabase_HasTheOrleansMembershipTablesAndQueries()
    {
        await using var database = await ClusterDatabase.OpenAsync();

        await using var tables = database.DataSource.CreateCommand(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()");
        var names = new List<string>();
        await using (var reader = await tables.ExecuteReaderAsync())
            while (await reader.ReadAsync()) names.Add(reader.GetString(0));
        // Unquoted names in the scripts are folded to lower case.
        Assert.True(names.Contains("orleansquery"),
            "no Orleans tables: ClusterSchema.EnsureAsync (ClusterDatabase.OpenAsync) creates them");
        Assert.Contains("orleansmembershiptable", names);
        Assert.Contains("orleansmembershipversiontable", names);

        var keys = await QueryKeysAsync(database);
        Assert.All(MembershipQueryKeys, key => Assert.Contains(key, keys));
    }

    [PostgresFact]
    public async Task TwoTests_RegisteringTheSameSilo_EachSeeOnlyTheirOwnCluster()
    {
        // Given two tests, each with its own database handle and cluster id, and a silo at the same address, port and
        // generation in both (the membership table's key is cluster id, address, port, generation), named after its test.
        await using var first = await ClusterDatabase.OpenAsync();
        await using var second = await ClusterDatabase.OpenAsync();
        var firstCluster = first.NewClusterId();
        var secondCluster = second.NewClusterId();
        Assert.NotEqual(firstCluster, secondCluster);
        Assert.StartsWith(nameof(TwoTests_RegisteringTheSameSilo_EachSeeOnlyTheirOwnCluster) + "-", firstCluster);
        Assert.True(firstCluster.Length <= 150, firstCluster);
        var startTime = DateTime.UtcNow;

        // When each registers the silo with Orleans' insert queries
        Assert.Equal(1, await InsertClusterAsync(first, firstCluster));
        Assert.Equal(1, await InsertClusterAsync(second, secondCluster));
        Assert.Equal(1, await InsertSiloAsync(first, firstCluster, "first", startTime));
        Assert.Equal(1, await InsertSiloAsync(second, secondCluster, "second", startTime));

        // Then both rows went in, each cluster's version moved from 0 to 1 and reads only its own silo
        Assert.Equal([("first", 1)], await ReadAllAsync(second, firstCluster));
        Assert.Equal([("second", 1)], await ReadAllAsync(first, secondCluster));
        // (the same silo again in one cluster is refused: that is the collision distinct ids avoid)
        Assert.Equal(0, await InsertSiloAsync(second, firstCluster, "second", startTime));

        // And when the first test ends, its rows are gone and the second's are untouched
        await first.DisposeAsync();
        Assert.Empty(await ReadAllAsync(second, firstCluster));
        Assert.Equal([("second", 1)], await ReadAllAsync(second, secondCluster));
    }

    private static async Task<HashSet<string>> QueryKeysAsync(ClusterDatabase database)
    {
        await using var command = database.DataSource.CreateCommand("SELECT QueryKey FROM OrleansQuery");
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) keys.Add(reader.GetString(0));
        return keys;
    }

    private static async Task<NpgsqlCommand> StoredQueryAsync(ClusterDatabase database, string key)
    {
        await using var lookup = database.DataSource.CreateCommand("SELECT QueryText FROM OrleansQuery WHERE QueryKey = @key");
        lookup.Parameters.AddWithValue("key", key);
        var text = (string?)await lookup.ExecuteScalarAsync() ?? throw new InvalidOperationException($"OrleansQuery has no {key}");
        return database.DataSource.CreateCommand(text);
    }

    private static async Task<int> InsertClusterAsync(ClusterDatabase database, string clusterId)
    {
        await using var command = await StoredQueryAsync(database, "InsertMembershipVersionKey");
        command.Parameters.AddWithValue("DeploymentId", clusterId);
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<int> InsertSiloAsync(ClusterDatabase database, string clusterId, string siloName, DateTime startTime)
    {
        await using var command = await StoredQueryAsync(database, "InsertMembershipKey");
        command.Parameters.AddWithValue("DeploymentId", clusterId);
        command.Parameters.AddWithValue("Address", "127.0.0.1");
        command.Parameters.AddWithValue("Port", 11111);
        command.Parameters.AddWithValue("Generation", 1);
        command.Parameters.AddWithValue("SiloName", siloName);
        command.Parameters.AddWithValue("HostName", "localhost");
        command.Parameters.AddWithValue("Status", 3);
        command.Parameters.AddWithValue("ProxyPort", 30000);
        command.Parameters.AddWithValue("StartTime", startTime);
        command.Parameters.AddWithValue("IAmAliveTime", startTime);
        command.Parameters.AddWithValue("Version", 0);
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<List<(string Silo, int Version)>> ReadAllAsync(ClusterDatabase database, string clusterId)
    {
        await using var command = await StoredQueryAsync(database, "MembershipReadAllKey");
        command.Parameters.AddWithValue("DeploymentId", clusterId);
        var rows = new List<(string, int)>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var silo = reader.GetOrdinal("siloname");
            // The version row is left-joined: a cluster with no silo reads one row with no silo name.
            if (!reader.IsDBNull(silo)) rows.Add((reader.GetString(silo), reader.GetInt32(reader.GetOrdinal("version"))));
        }
        return rows;
    }
}
