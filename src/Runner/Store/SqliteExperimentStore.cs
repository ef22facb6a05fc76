using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Store;

/// <summary>
/// The experiment store as an embedded SQLite database (<c>experiment.db</c> in the experiment directory), in WAL mode
/// with full synchronisation on commit. Writes are queued in memory and committed by <see cref="Flush"/> in a single
/// transaction with prepared statements, so thousands of results cost one commit.
/// </summary>
public sealed class SqliteExperimentStore : IExperimentStore
{
    public const string FileName = "experiment.db";

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS experiment (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS trials (
            trial_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, status TEXT NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS results (
            trial_id TEXT NOT NULL, iteration INTEGER NOT NULL, result TEXT NOT NULL, PRIMARY KEY (trial_id, iteration)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS status_changes (
            id INTEGER PRIMARY KEY, trial_id TEXT NOT NULL, previous TEXT, status TEXT NOT NULL, reason TEXT, at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS decisions (
            id INTEGER PRIMARY KEY, trial_id TEXT NOT NULL, iteration INTEGER NOT NULL, decision TEXT NOT NULL, source TEXT NOT NULL, at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS checkpoints (
            trial_id TEXT NOT NULL, path TEXT NOT NULL, iteration INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (trial_id, path)) WITHOUT ROWID;
        """;

    private readonly object _gate = new();
    private readonly SqliteConnection _connection;
    private List<Write> _pending = new();
    private List<Write> _spare = new();
    private readonly Dictionary<Trial, int> _trialStateIndex = new();
    private bool _disposed;

    private SqliteExperimentStore(string directory, SqliteConnection connection)
    {
        Directory = directory;
        _connection = connection;
    }

    public string Directory { get; }

    public int PendingWrites
    {
        get { lock (_gate) return _pending.Count; }
    }

    /// <summary>Opens (creating when needed) the store of the experiment in <paramref name="directory"/>.</summary>
    public static SqliteExperimentStore Open(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(directory, FileName),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString());
        connection.Open();
        using (var pragma = connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;";
            pragma.ExecuteNonQuery();
        }
        using (var create = connection.CreateCommand())
        {
            create.CommandText = Schema;
            create.ExecuteNonQuery();
        }
        return new SqliteExperimentStore(directory, connection);
    }

    /// <summary>True when <paramref name="directory"/> holds an experiment store.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, FileName));

    public void TrialAdded(Trial trial) => QueueTrialState(trial);

    public void TrialChanged(Trial trial, TrialStatus? previousStatus = null, string? reason = null)
    {
        QueueTrialState(trial);
        if (previousStatus is { } previous && previous != trial.Status)
            Queue(new Write(WriteKind.StatusChange, trial.Id) { Text = previous.ToString(), Text2 = trial.Status.ToString(), Text3 = reason, Time = Now() });
    }

    public void ResultReported(Trial trial, TrialResult result) =>
        Queue(new Write(WriteKind.Result, trial.Id) { Number = result.TrainingIteration, Result = result });

    public void ResultsRolledBack(Trial trial, long keepThroughIteration) =>
        Queue(new Write(WriteKind.Rollback, trial.Id) { Number = keepThroughIteration });

    public void CheckpointSaved(Trial trial, PersistentCheckpoint checkpoint) =>
        Queue(new Write(WriteKind.Checkpoint, trial.Id) { Text = checkpoint.Directory, Number = checkpoint.TrainingIteration, Time = Now() });

    public void DecisionMade(Trial trial, long iteration, string decision, string source) =>
        Queue(new Write(WriteKind.Decision, trial.Id) { Number = iteration, Text = decision, Text2 = source, Time = Now() });

    public void SaveExperimentState(JsonObject state)
    {
        foreach (var (key, value) in state)
            Queue(new Write(WriteKind.Experiment, key) { Text = value?.ToJsonString() ?? "null" });
    }

    public void Flush()
    {
        List<Write> batch;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_pending.Count == 0) return;
            batch = _pending;
            _pending = _spare;
            _spare = batch;
            _trialStateIndex.Clear();
        }

        using var tx = _connection.BeginTransaction();
        using var trialCmd = Command(tx, "INSERT INTO trials (trial_id, sequence, status, state, updated_at) VALUES ($a, $n, $b, $c, $t) " +
                                         "ON CONFLICT(trial_id) DO UPDATE SET status = excluded.status, state = excluded.state, updated_at = excluded.updated_at", "$a", "$n", "$b", "$c", "$t");
        using var resultCmd = Command(tx, "INSERT OR REPLACE INTO results (trial_id, iteration, result) VALUES ($a, $n, $b)", "$a", "$n", "$b");
        using var rollbackCmd = Command(tx, "DELETE FROM results WHERE trial_id = $a AND iteration > $n", "$a", "$n");
        using var statusCmd = Command(tx, "INSERT INTO status_changes (trial_id, previous, status, reason, at) VALUES ($a, $b, $c, $d, $t)", "$a", "$b", "$c", "$d", "$t");
        using var decisionCmd = Command(tx, "INSERT INTO decisions (trial_id, iteration, decision, source, at) VALUES ($a, $n, $b, $c, $t)", "$a", "$n", "$b", "$c", "$t");
        using var checkpointCmd = Command(tx, "INSERT OR REPLACE INTO checkpoints (trial_id, path, iteration, at) VALUES ($a, $b, $n, $t)", "$a", "$b", "$n", "$t");
        using var experimentCmd = Command(tx, "INSERT OR REPLACE INTO experiment (key, value) VALUES ($a, $b)", "$a", "$b");

        foreach (var w in batch)
        {
            switch (w.Kind)
            {
                case WriteKind.TrialState:
                    Run(trialCmd, w.Key, w.Number, w.Text, w.Text2, w.Time);
                    break;
                case WriteKind.Result:
                    Run(resultCmd, w.Key, w.Number, Loggers.ResultJson.Serialize(w.Result!));
                    break;
                case WriteKind.Rollback:
                    Run(rollbackCmd, w.Key, w.Number);
                    break;
                case WriteKind.StatusChange:
                    Run(statusCmd, w.Key, w.Text, w.Text2, w.Text3, w.Time);
                    break;
                case WriteKind.Decision:
                    Run(decisionCmd, w.Key, w.Number, w.Text, w.Text2, w.Time);
                    break;
                case WriteKind.Checkpoint:
                    Run(checkpointCmd, w.Key, w.Text, w.Number, w.Time);
                    break;
                case WriteKind.Experiment:
                    Run(experimentCmd, w.Key, w.Text);
                    break;
            }
        }
        tx.Commit();
        batch.Clear();
    }

    public StoredExperiment? Load()
    {
        lock (_gate)
        {
            var state = new JsonObject();
            using (var cmd = _connection.CreateCommand())
            {
                cmd.CommandText = "SELECT key, value FROM experiment";
                using var reader = cmd.ExecuteReader();
                while (reader.Read()) state[reader.GetString(0)] = JsonNode.Parse(reader.GetString(1));
            }

            var checkpoints = new Dictionary<string, List<StoredCheckpoint>>();
            using (var cmd = _connection.CreateCommand())
            {
                cmd.CommandText = "SELECT trial_id, path, iteration FROM checkpoints ORDER BY iteration";
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                {
                    if (!checkpoints.TryGetValue(reader.GetString(0), out var list)) checkpoints[reader.GetString(0)] = list = new();
                    list.Add(new StoredCheckpoint(reader.GetString(1), reader.GetInt64(2)));
                }
            }

            var trials = new List<StoredTrial>();
            using (var cmd = _connection.CreateCommand())
            {
                cmd.CommandText = "SELECT trial_id, state FROM trials ORDER BY sequence";
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                {
                    var id = reader.GetString(0);
                    trials.Add(new StoredTrial(JsonNode.Parse(reader.GetString(1))!.AsObject(), checkpoints.GetValueOrDefault(id) ?? new List<StoredCheckpoint>()));
                }
            }
            if (trials.Count == 0 && state.Count == 0) return null;
            return new StoredExperiment(state, trials, CountResults());
        }
    }

    /// <summary>Results stored for one trial, oldest first.</summary>
    public IReadOnlyList<TrialResult> ResultsOf(string trialId)
    {
        lock (_gate)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT result FROM results WHERE trial_id = $a ORDER BY iteration";
            cmd.Parameters.AddWithValue("$a", trialId);
            using var reader = cmd.ExecuteReader();
            var list = new List<TrialResult>();
            while (reader.Read()) list.Add(TrialResult.FromJsonObject(JsonNode.Parse(reader.GetString(0))!.AsObject()));
            return list;
        }
    }

    /// <summary>Rows in a table (for status reports and tests).</summary>
    public long Count(string table)
    {
        if (table is not ("trials" or "results" or "status_changes" or "decisions" or "checkpoints" or "experiment"))
            throw new ArgumentException($"unknown table '{table}'", nameof(table));
        lock (_gate)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = $"SELECT COUNT(*) FROM {table}";
            return (long)cmd.ExecuteScalar()!;
        }
    }

    private long CountResults()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM results";
        return (long)cmd.ExecuteScalar()!;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
        }
        Flush();
        lock (_gate)
        {
            _disposed = true;
            _connection.Dispose();
        }
    }

    private void QueueTrialState(Trial trial)
    {
        lock (_gate)
        {
            var write = new Write(WriteKind.TrialState, trial.Id)
            {
                Number = trial.Sequence,
                Text = trial.Status.ToString(),
                Text2 = TrialStateCodec.Encode(trial).ToJsonString(),
                Time = Now(),
            };
            // Only the newest state of a trial matters within one commit.
            if (_trialStateIndex.TryGetValue(trial, out var index))
            {
                _pending[index] = write;
                return;
            }
            _trialStateIndex[trial] = _pending.Count;
            _pending.Add(write);
        }
    }

    private void Queue(Write write)
    {
        lock (_gate) _pending.Add(write);
    }

    private SqliteCommand Command(SqliteTransaction tx, string sql, params string[] names)
    {
        var cmd = _connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var name in names) cmd.Parameters.Add(new SqliteParameter { ParameterName = name });
        cmd.Prepare();
        return cmd;
    }

    private static void Run(SqliteCommand cmd, params object?[] values)
    {
        for (int i = 0; i < values.Length; i++) cmd.Parameters[i].Value = values[i] ?? DBNull.Value;
        cmd.ExecuteNonQuery();
    }

    private static double Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    private enum WriteKind
    {
        TrialState,
        Result,
        Rollback,
        StatusChange,
        Decision,
        Checkpoint,
        Experiment,
    }

    private sealed record Write(WriteKind Kind, string Key)
    {
        public long Number { get; init; }
        public string? Text { get; init; }
        public string? Text2 { get; init; }
        public string? Text3 { get; init; }
        public double Time { get; init; }
        public TrialResult? Result { get; init; }
    }
}
