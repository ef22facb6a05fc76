using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using SQLitePCL;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Store;

/// <summary>
/// The experiment store as an embedded SQLite database (<c>experiment.db</c> in the experiment directory), in WAL mode
/// with full synchronisation on commit. Writes are queued in memory; a flush takes everything queued as one batch
/// (a trial's state is encoded once per batch, on the caller's thread, so it is a consistent picture) and a background
/// writer commits each batch in one transaction with prepared statements, in order. Thousands of results cost one commit
/// and the controller never waits on the disk. Checkpoints retired in a batch lose their files only after its commit.
/// </summary>
public sealed class SqliteExperimentStore : IExperimentStore
{
    public const string FileName = "experiment.db";

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS experiment (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS trials (
            trial_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, status TEXT NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS results (trial_id TEXT NOT NULL, iteration INTEGER NOT NULL, result TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS status_changes (
            id INTEGER PRIMARY KEY, trial_id TEXT NOT NULL, previous TEXT, status TEXT NOT NULL, reason TEXT, at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS decisions (
            id INTEGER PRIMARY KEY, trial_id TEXT NOT NULL, iteration INTEGER NOT NULL, decision TEXT NOT NULL, source TEXT NOT NULL, at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS checkpoints (
            trial_id TEXT NOT NULL, path TEXT NOT NULL, iteration INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (trial_id, path)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS exploits (
            id INTEGER PRIMARY KEY, trial_id TEXT NOT NULL, donor_id TEXT NOT NULL, iteration INTEGER NOT NULL, old_config TEXT NOT NULL, new_config TEXT NOT NULL, at REAL NOT NULL);
        """;

    private readonly object _gate = new();
    private readonly object _db = new();
    private readonly SqliteConnection _connection;
    private readonly Queue<List<Write>> _batches = new();
    private readonly Thread _writer;
    private List<Write> _pending = new();
    private readonly Dictionary<Trial, int> _trialStateIndex = new();
    private long _submitted;
    private long _committed;
    private Exception? _writerError;
    private Statements? _statements;
    private bool _indexed;
    private bool _disposed;
    private readonly bool _readOnly;

    private SqliteExperimentStore(string directory, SqliteConnection connection, bool readOnly = false)
    {
        Directory = directory;
        _connection = connection;
        _readOnly = readOnly;
        _writer = new Thread(WriteBatches) { IsBackground = true, Name = "torchtrials-store" };
        _writer.Start();
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

    /// <summary>
    /// Opens the store of the experiment in <paramref name="directory"/> for reading only, while its owner may be writing:
    /// nothing is created, migrated or checkpointed. Without a <c>-wal</c> file the database file is complete and is opened
    /// immutable, since SQLite would otherwise create <c>-wal</c> and <c>-shm</c> files even for a read-only connection; with
    /// one (a live or killed owner) it is opened read-only so the log is read too. Throws
    /// <see cref="ExperimentOpenException"/> naming the file when it is missing, empty or not a TorchTrials store.
    /// </summary>
    public static SqliteExperimentStore OpenReadOnly(string directory)
    {
        var path = Path.GetFullPath(Path.Combine(directory, FileName));
        if (!File.Exists(path)) throw new ExperimentOpenException($"'{directory}' holds no experiment (no {FileName})");
        if (new FileInfo(path).Length == 0) throw new ExperimentOpenException($"'{path}' is damaged: the file is empty (0 bytes)");
        bool immutable = !File.Exists(path + "-wal");
        var uri = new Uri(path).AbsoluteUri + (immutable ? "?immutable=1" : "?mode=ro");
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = uri, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        try
        {
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('experiment', 'trials', 'results', 'status_changes', 'decisions', 'checkpoints')";
            if ((long)cmd.ExecuteScalar()! != 6) throw new ExperimentOpenException($"'{path}' is damaged: it is an SQLite database without the tables of a TorchTrials experiment");
        }
        catch (SqliteException e)
        {
            connection.Dispose();
            throw Damaged(path, e);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
        return new SqliteExperimentStore(directory, connection, readOnly: true);
    }

    /// <summary>
    /// The experiment stored in <paramref name="directory"/>, read without changing any file; throws
    /// <see cref="ExperimentOpenException"/> naming the file when it is damaged (empty, truncated, not a database) or holds no experiment.
    /// </summary>
    public static StoredExperiment Inspect(string directory)
    {
        using var store = OpenReadOnly(directory);
        try
        {
            return store.Load() ?? throw new ExperimentOpenException($"'{Path.Combine(directory, FileName)}' holds no experiment (no trials and no state)");
        }
        catch (SqliteException e)
        {
            throw Damaged(Path.GetFullPath(Path.Combine(directory, FileName)), e);
        }
    }

    internal static ExperimentOpenException Damaged(string path, SqliteException e) =>
        new($"'{path}' is damaged: {e.Message.Replace("SQLite Error ", "SQLite error ", StringComparison.Ordinal).ReplaceLineEndings(" ")}", e);

    /// <summary>True when <paramref name="directory"/> holds an experiment store.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, FileName));

    public void TrialAdded(Trial trial) => QueueTrialState(trial);

    public void TrialChanged(Trial trial, TrialStatus? previousStatus = null, string? reason = null)
    {
        QueueTrialState(trial);
        if (previousStatus is { } previous && previous != trial.Status)
            Queue(new StatusChangeWrite(trial.Id, previous.ToString(), trial.Status.ToString(), reason, Now()));
    }

    public void ResultReported(Trial trial, TrialResult result) => Queue(new ResultWrite(trial.Id, result.TrainingIteration, result));

    public void ResultsRolledBack(Trial trial, long keepThroughIteration) => Queue(new RollbackWrite(trial.Id, keepThroughIteration));

    public void CheckpointSaved(Trial trial, PersistentCheckpoint checkpoint) =>
        Queue(new CheckpointWrite(trial.Id, checkpoint.Directory, checkpoint.TrainingIteration, Now()));

    public void CheckpointRetired(Trial trial, PersistentCheckpoint checkpoint) => Queue(new CheckpointRetiredWrite(trial.Id, checkpoint));

    public void DecisionMade(Trial trial, long iteration, string decision, string source) =>
        Queue(new DecisionWrite(trial.Id, iteration, decision, source, Now()));

    /// <summary>A PBT exploit, as a row of <c>exploits</c> (the recipient's new config is its current one).</summary>
    public void ExploitMade(Trial trial, Trial donor, long iteration, TrialConfig oldConfig) =>
        Queue(new ExploitWrite(trial.Id, donor.Id, iteration, oldConfig.ToJson(), trial.Config.ToJson(), Now()));

    public void SaveExperimentState(JsonObject state)
    {
        foreach (var (key, value) in state) Queue(new ExperimentWrite(key, value?.ToJsonString() ?? "null"));
    }

    public void Flush()
    {
        long target = Submit();
        lock (_batches)
        {
            while (Volatile.Read(ref _committed) < target && _writerError is null) Monitor.Wait(_batches);
        }
        ThrowIfWriterFailed();
    }

    public void BeginFlush() => Submit();

    /// <summary>Takes the queued writes as one batch (encoding trial states now) and hands it to the writer; returns its number.</summary>
    private long Submit()
    {
        ThrowIfWriterFailed();
        List<Write> batch;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_pending.Count == 0) return Volatile.Read(ref _submitted);
            batch = _pending;
            _pending = new List<Write>(batch.Count);
            _trialStateIndex.Clear();
        }
        for (int i = 0; i < batch.Count; i++)
        {
            if (batch[i] is QueuedTrialState { Trial: var trial })
                batch[i] = new TrialStateWrite(trial.Id, trial.Sequence, trial.Status.ToString(), TrialStateCodec.EncodeJson(trial), Now());
        }
        lock (_batches)
        {
            _batches.Enqueue(batch);
            long number = ++_submitted;
            Monitor.PulseAll(_batches);
            return number;
        }
    }

    private void WriteBatches()
    {
        while (true)
        {
            List<Write>? batch;
            lock (_batches)
            {
                while (_batches.Count == 0 && !_disposed) Monitor.Wait(_batches);
                if (_batches.Count == 0) return;
                batch = _batches.Peek();
            }
            try
            {
                lock (_db) Commit(batch);
                DeleteRetiredCheckpoints(batch);
            }
            catch (Exception e)
            {
                lock (_batches)
                {
                    _writerError = e;
                    Monitor.PulseAll(_batches);
                }
                return;
            }
            lock (_batches)
            {
                _batches.Dequeue();
                _committed++;
                Monitor.PulseAll(_batches);
            }
        }
    }

    /// <summary>Files of checkpoints the batch took out of the index go only now that the batch is durable.</summary>
    private static void DeleteRetiredCheckpoints(List<Write> batch)
    {
        foreach (var w in batch)
        {
            if (w is not CheckpointRetiredWrite { Checkpoint: var checkpoint }) continue;
            try
            {
                checkpoint.Delete();
            }
            catch (IOException)
            {
                // Left behind, not lost: a resume removes checkpoint folders that the index does not name.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    private void ThrowIfWriterFailed()
    {
        if (_writerError is { } e) throw new IOException($"the experiment store could not commit to {Path.Combine(Directory, FileName)}: {e.Message}", e);
    }

    /// <summary>Writes one batch in one transaction through SQLite's C API (prepared once, bound per row).</summary>
    private void Commit(List<Write> batch)
    {
        var db = _connection.Handle!;
        _statements ??= new Statements(db);
        var st = _statements;
        Check(db, raw.sqlite3_exec(db, "BEGIN IMMEDIATE"));
        try
        {
            foreach (var w in batch)
            {
                switch (w)
                {
                    case TrialStateWrite t:
                        st.Trial.Text(1, t.TrialId).Int(2, t.Sequence).Text(3, t.Status).Text(4, t.State).Real(5, t.At).Run();
                        break;
                    case ResultWrite r:
                        st.Result.Text(1, r.TrialId).Int(2, r.Iteration).Utf8(3, ResultJson.SerializeCompactUtf8(r.Result)).Run();
                        break;
                    case RollbackWrite r:
                        st.Rollback.Text(1, r.TrialId).Int(2, r.KeepThroughIteration).Run();
                        break;
                    case StatusChangeWrite c:
                        st.Status.Text(1, c.TrialId).Text(2, c.Previous).Text(3, c.Status).Text(4, c.Reason).Real(5, c.At).Run();
                        break;
                    case DecisionWrite d:
                        st.Decision.Text(1, d.TrialId).Int(2, d.Iteration).Text(3, d.Decision).Text(4, d.Source).Real(5, d.At).Run();
                        break;
                    case ExploitWrite x:
                        st.Exploit.Text(1, x.TrialId).Text(2, x.DonorId).Int(3, x.Iteration).Text(4, x.OldConfig).Text(5, x.NewConfig).Real(6, x.At).Run();
                        break;
                    case CheckpointWrite c:
                        st.Checkpoint.Text(1, c.TrialId).Text(2, c.Path).Int(3, c.Iteration).Real(4, c.At).Run();
                        break;
                    case CheckpointRetiredWrite c:
                        st.CheckpointRetired.Text(1, c.TrialId).Text(2, c.Checkpoint.Directory).Run();
                        break;
                    case ExperimentWrite e:
                        st.Experiment.Text(1, e.Key).Text(2, e.Value).Run();
                        break;
                    case QueuedTrialState:
                        throw new InvalidOperationException("a trial state reached the writer unencoded");
                }
            }
            Check(db, raw.sqlite3_exec(db, "COMMIT"));
        }
        catch
        {
            raw.sqlite3_exec(db, "ROLLBACK");
            throw;
        }
    }

    private static void Check(sqlite3 db, int code)
    {
        if (code is not (raw.SQLITE_OK or raw.SQLITE_DONE or raw.SQLITE_ROW))
            throw new IOException($"SQLite error {code}: {raw.sqlite3_errmsg(db).utf8_to_string()}");
    }

    /// <summary>The store's prepared statements, reused across batches.</summary>
    private sealed class Statements(sqlite3 db)
    {
        public Statement Trial { get; } = new(db, "INSERT INTO trials (trial_id, sequence, status, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) " +
                                                  "ON CONFLICT(trial_id) DO UPDATE SET status = excluded.status, state = excluded.state, updated_at = excluded.updated_at");
        // Appended without an index: duplicates cannot arise because every restore queues its rollback before the new results.
        public Statement Result { get; } = new(db, "INSERT INTO results (trial_id, iteration, result) VALUES (?1, ?2, ?3)");
        public Statement Rollback { get; } = new(db, "DELETE FROM results WHERE trial_id = ?1 AND iteration > ?2");
        public Statement Status { get; } = new(db, "INSERT INTO status_changes (trial_id, previous, status, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)");
        public Statement Decision { get; } = new(db, "INSERT INTO decisions (trial_id, iteration, decision, source, at) VALUES (?1, ?2, ?3, ?4, ?5)");
        public Statement Checkpoint { get; } = new(db, "INSERT OR REPLACE INTO checkpoints (trial_id, path, iteration, at) VALUES (?1, ?2, ?3, ?4)");
        public Statement CheckpointRetired { get; } = new(db, "DELETE FROM checkpoints WHERE trial_id = ?1 AND path = ?2");
        public Statement Experiment { get; } = new(db, "INSERT OR REPLACE INTO experiment (key, value) VALUES (?1, ?2)");
        public Statement Exploit { get; } = new(db, "INSERT INTO exploits (trial_id, donor_id, iteration, old_config, new_config, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");

        public void Dispose()
        {
            foreach (var s in new[] { Trial, Result, Rollback, Status, Decision, Checkpoint, CheckpointRetired, Experiment, Exploit }) s.Dispose();
        }
    }

    private sealed class Statement
    {
        private readonly sqlite3 _db;
        private readonly sqlite3_stmt _stmt;

        public Statement(sqlite3 db, string sql)
        {
            _db = db;
            Check(db, raw.sqlite3_prepare_v2(db, sql, out _stmt));
        }

        public Statement Text(int index, string? value)
        {
            Check(_db, value is null ? raw.sqlite3_bind_null(_stmt, index) : raw.sqlite3_bind_text(_stmt, index, value));
            return this;
        }

        public Statement Utf8(int index, ReadOnlySpan<byte> value)
        {
            Check(_db, raw.sqlite3_bind_text(_stmt, index, value));
            return this;
        }

        public Statement Int(int index, long value)
        {
            Check(_db, raw.sqlite3_bind_int64(_stmt, index, value));
            return this;
        }

        public Statement Real(int index, double value)
        {
            Check(_db, raw.sqlite3_bind_double(_stmt, index, value));
            return this;
        }

        public void Run()
        {
            int code = raw.sqlite3_step(_stmt);
            raw.sqlite3_reset(_stmt);
            Check(_db, code);
        }

        public void Dispose() => _stmt.Dispose();
    }

    /// <summary>
    /// Runs <paramref name="read"/> in one read transaction, so that all its queries see the same commit (one WAL snapshot)
    /// even while the owner commits between them: trials, their states and their results agree.
    /// </summary>
    internal T ReadSnapshot<T>(Func<T> read)
    {
        lock (_db)
        {
            Execute("BEGIN DEFERRED");
            try
            {
                return read();
            }
            finally
            {
                Execute("COMMIT");
            }
        }

        void Execute(string sql)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = sql;
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>The per-trial index of results, built when results are first read (appending stays index-free).</summary>
    private void EnsureResultIndex()
    {
        if (_indexed || _readOnly) return;
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "CREATE INDEX IF NOT EXISTS results_by_trial ON results (trial_id, iteration)";
        cmd.ExecuteNonQuery();
        _indexed = true;
    }

    public StoredExperiment? Load()
    {
        Flush();
        lock (_db)
        {
            EnsureResultIndex();
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
        Flush();
        lock (_db)
        {
            EnsureResultIndex();
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT result FROM results WHERE trial_id = $a ORDER BY iteration";
            cmd.Parameters.AddWithValue("$a", trialId);
            using var reader = cmd.ExecuteReader();
            var list = new List<TrialResult>();
            while (reader.Read()) list.Add(ResultJson.Parse(reader.GetString(0)) with { TrialId = trialId });
            return list;
        }
    }

    /// <summary>
    /// Every trial's stored results, oldest first, in one query: a read-only store has no per-trial index (it never writes
    /// one), so <see cref="ResultsOf"/> per trial scans the whole table each time (7.7 s for 1,000 trials of 50 results).
    /// </summary>
    internal IReadOnlyDictionary<string, IReadOnlyList<TrialResult>> AllResults()
    {
        Flush();
        lock (_db)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT trial_id, result FROM results ORDER BY trial_id, iteration, rowid";
            using var reader = cmd.ExecuteReader();
            var all = new Dictionary<string, IReadOnlyList<TrialResult>>(StringComparer.Ordinal);
            while (reader.Read())
            {
                var id = reader.GetString(0);
                if (!all.TryGetValue(id, out var list)) all[id] = list = new List<TrialResult>();
                ((List<TrialResult>)list).Add(ResultJson.Parse(reader.GetString(1)) with { TrialId = id });
            }
            return all;
        }
    }

    /// <summary>The <c>decisions</c> rows in the order made (the caller reads inside <see cref="ReadSnapshot"/> for a consistent cut).</summary>
    internal IReadOnlyList<StoredDecision> Decisions() => Rows(
        "SELECT trial_id, iteration, decision, source, at FROM decisions ORDER BY id",
        r => new StoredDecision(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetDouble(4)));

    /// <summary>The <c>status_changes</c> rows in the order made.</summary>
    internal IReadOnlyList<StoredStatusChange> StatusChanges() => Rows(
        "SELECT trial_id, previous, status, reason, at FROM status_changes ORDER BY id",
        r => new StoredStatusChange(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetDouble(4)));

    /// <summary>The <c>exploits</c> rows in the order made; none for a store written before the table existed.</summary>
    internal IReadOnlyList<StoredExploit> Exploits()
    {
        lock (_db)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'exploits'";
            if ((long)cmd.ExecuteScalar()! == 0) return [];
        }
        return Rows(
            "SELECT trial_id, donor_id, iteration, old_config, new_config, at FROM exploits ORDER BY id",
            r => new StoredExploit(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetDouble(5)));
    }

    private List<T> Rows<T>(string sql, Func<SqliteDataReader, T> row)
    {
        Flush();
        lock (_db)
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = sql;
            using var reader = cmd.ExecuteReader();
            var list = new List<T>();
            while (reader.Read()) list.Add(row(reader));
            return list;
        }
    }

    /// <summary>Rows in a table (for status reports and tests).</summary>
    public long Count(string table)
    {
        if (table is not ("trials" or "results" or "status_changes" or "decisions" or "checkpoints" or "experiment" or "exploits"))
            throw new ArgumentException($"unknown table '{table}'", nameof(table));
        Flush();
        lock (_db)
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
        try
        {
            Flush();
        }
        finally
        {
            lock (_gate) _disposed = true;
            lock (_batches) Monitor.PulseAll(_batches);
            _writer.Join();
            lock (_db)
            {
                _statements?.Dispose();
                _connection.Dispose();
            }
        }
    }

    private void QueueTrialState(Trial trial)
    {
        ThrowIfReadOnly();
        lock (_gate)
        {
            // Only the newest state of a trial matters within one commit: it is encoded when the batch is taken.
            if (_trialStateIndex.ContainsKey(trial)) return;
            _trialStateIndex[trial] = _pending.Count;
            _pending.Add(new QueuedTrialState(trial));
        }
    }

    private void Queue(Write write)
    {
        ThrowIfReadOnly();
        lock (_gate) _pending.Add(write);
    }

    private void ThrowIfReadOnly()
    {
        if (_readOnly) throw new InvalidOperationException($"the store in '{Directory}' was opened read-only");
    }

    private static double Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    /// <summary>One queued row: a record type per kind of write, each holding its statement's values by name.</summary>
    private abstract record Write;

    /// <summary>A trial whose state is encoded when its batch is taken (<see cref="Submit"/>), into a <see cref="TrialStateWrite"/>.</summary>
    private sealed record QueuedTrialState(Trial Trial) : Write;

    /// <summary>A row of <c>trials</c>, inserted or updated.</summary>
    private sealed record TrialStateWrite(string TrialId, long Sequence, string Status, string State, double At) : Write;

    /// <summary>A row of <c>results</c>; the result is serialised on the writer's thread.</summary>
    private sealed record ResultWrite(string TrialId, long Iteration, TrialResult Result) : Write;

    /// <summary>Deletes the trial's results after <see cref="KeepThroughIteration"/>.</summary>
    private sealed record RollbackWrite(string TrialId, long KeepThroughIteration) : Write;

    /// <summary>A row of <c>status_changes</c>.</summary>
    private sealed record StatusChangeWrite(string TrialId, string Previous, string Status, string? Reason, double At) : Write;

    /// <summary>A row of <c>decisions</c>.</summary>
    private sealed record DecisionWrite(string TrialId, long Iteration, string Decision, string Source, double At) : Write;

    /// <summary>A row of <c>exploits</c>; the configs are JSON objects.</summary>
    private sealed record ExploitWrite(string TrialId, string DonorId, long Iteration, string OldConfig, string NewConfig, double At) : Write;

    /// <summary>A row of the checkpoint index.</summary>
    private sealed record CheckpointWrite(string TrialId, string Path, long Iteration, double At) : Write;

    /// <summary>Takes a checkpoint out of the index; its files go after the commit.</summary>
    private sealed record CheckpointRetiredWrite(string TrialId, PersistentCheckpoint Checkpoint) : Write;

    /// <summary>A key of the experiment's state.</summary>
    private sealed record ExperimentWrite(string Key, string Value) : Write;
}
