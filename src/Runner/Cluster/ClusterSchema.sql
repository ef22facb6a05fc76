-- TorchTrials' PostgreSQL schema for Orleans' ADO.NET clustering provider (Microsoft.Orleans.Clustering.AdoNet 10.4.2),
-- membership only. Written for TorchTrials; applied by ClusterSchema.EnsureAsync (a worker before its silo starts, a
-- controller before its client connects), inside one transaction under an advisory lock, so it must stay idempotent:
-- tables are created when missing and the query rows are replaced by the texts below.
--
-- What the provider expects, and nothing more:
--   * OrleansQuery maps a key to the SQL the provider runs for it; it reads every row at start and needs the keys below.
--   * The provider binds parameters by name (@DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName, @Status,
--     @ProxyPort, @SuspectTimes, @StartTime, @IAmAliveTime, @Version) and reads result columns by name.
--   * The insert and update keys answer one row with one number: above 0 when the write happened, 0 when it did not
--     (the cluster's version moved on, or the silo is already there); the version row is only bumped when the write
--     happens, and both changes are one statement, so they commit together or not at all.
--   * Status 3 is an active silo.
-- The provider's other tables (reminders, grain state) are not TorchTrials' business and are not created here.

CREATE TABLE IF NOT EXISTS OrleansQuery
(
    QueryKey  varchar(64) NOT NULL PRIMARY KEY,
    QueryText text        NOT NULL
);

-- One row per cluster (DeploymentId is Orleans' cluster id): the version every membership change must name and bump.
CREATE TABLE IF NOT EXISTS OrleansMembershipVersionTable
(
    DeploymentId varchar(150)   NOT NULL PRIMARY KEY,
    Timestamp    timestamptz(3) NOT NULL DEFAULT now(),
    Version      integer        NOT NULL DEFAULT 0
);

-- One row per silo incarnation (address, port and generation) of a cluster.
CREATE TABLE IF NOT EXISTS OrleansMembershipTable
(
    DeploymentId varchar(150)   NOT NULL REFERENCES OrleansMembershipVersionTable (DeploymentId),
    Address      varchar(45)    NOT NULL,
    Port         integer        NOT NULL,
    Generation   integer        NOT NULL,
    SiloName     varchar(150)   NOT NULL,
    HostName     varchar(150)   NOT NULL,
    Status       integer        NOT NULL,
    ProxyPort    integer        NULL,
    SuspectTimes varchar(8000)  NULL,
    StartTime    timestamptz(3) NOT NULL,
    IAmAliveTime timestamptz(3) NOT NULL,
    PRIMARY KEY (DeploymentId, Address, Port, Generation)
);

INSERT INTO OrleansQuery AS q (QueryKey, QueryText) VALUES

-- A cluster's version row, at version 0, unless it has one already.
('InsertMembershipVersionKey', $sql$
WITH created AS (
    INSERT INTO OrleansMembershipVersionTable (DeploymentId)
    VALUES (@DeploymentId)
    ON CONFLICT (DeploymentId) DO NOTHING
    RETURNING 1
)
SELECT count(*)::integer FROM created;
$sql$),

-- A new silo: only while the cluster is still at @Version and the silo is not there yet; bumps the version.
('InsertMembershipKey', $sql$
WITH next_version AS (
    UPDATE OrleansMembershipVersionTable AS v
    SET Version = v.Version + 1, Timestamp = now()
    WHERE v.DeploymentId = @DeploymentId AND v.Version = @Version
      AND NOT EXISTS (SELECT 1 FROM OrleansMembershipTable AS s
                      WHERE s.DeploymentId = @DeploymentId AND s.Address = @Address
                        AND s.Port = @Port AND s.Generation = @Generation)
    RETURNING v.DeploymentId
), added AS (
    INSERT INTO OrleansMembershipTable
        (DeploymentId, Address, Port, Generation, SiloName, HostName, Status, ProxyPort, StartTime, IAmAliveTime)
    SELECT n.DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName, @Status, @ProxyPort, @StartTime, @IAmAliveTime
    FROM next_version AS n
    ON CONFLICT (DeploymentId, Address, Port, Generation) DO NOTHING
    RETURNING 1
)
SELECT count(*)::integer FROM added;
$sql$),

-- A silo's status, suspicions and liveness: only while the cluster is still at @Version and the silo is there.
('UpdateMembershipKey', $sql$
WITH next_version AS (
    UPDATE OrleansMembershipVersionTable AS v
    SET Version = v.Version + 1, Timestamp = now()
    WHERE v.DeploymentId = @DeploymentId AND v.Version = @Version
      AND EXISTS (SELECT 1 FROM OrleansMembershipTable AS s
                  WHERE s.DeploymentId = @DeploymentId AND s.Address = @Address
                    AND s.Port = @Port AND s.Generation = @Generation)
    RETURNING v.DeploymentId
), changed AS (
    UPDATE OrleansMembershipTable AS s
    SET Status = @Status, SuspectTimes = @SuspectTimes, IAmAliveTime = @IAmAliveTime
    FROM next_version AS n
    WHERE s.DeploymentId = n.DeploymentId AND s.Address = @Address AND s.Port = @Port AND s.Generation = @Generation
    RETURNING 1
)
SELECT count(*)::integer FROM changed;
$sql$),

-- A silo's heartbeat: no version change, and the provider does not look at the result.
('UpdateIAmAlivetimeKey', $sql$
UPDATE OrleansMembershipTable
SET IAmAliveTime = @IAmAliveTime
WHERE DeploymentId = @DeploymentId AND Address = @Address AND Port = @Port AND Generation = @Generation;
$sql$),

-- The cluster's version with every silo; a cluster without silos still answers its version (silo columns null).
('MembershipReadAllKey', $sql$
SELECT v.DeploymentId, s.Address, s.Port, s.Generation, s.SiloName, s.HostName, s.Status, s.ProxyPort,
       s.SuspectTimes, s.StartTime, s.IAmAliveTime, v.Version
FROM OrleansMembershipVersionTable AS v
LEFT JOIN OrleansMembershipTable AS s ON s.DeploymentId = v.DeploymentId
WHERE v.DeploymentId = @DeploymentId;
$sql$),

-- The cluster's version with one silo, the same way.
('MembershipReadRowKey', $sql$
SELECT v.DeploymentId, s.Address, s.Port, s.Generation, s.SiloName, s.HostName, s.Status, s.ProxyPort,
       s.SuspectTimes, s.StartTime, s.IAmAliveTime, v.Version
FROM OrleansMembershipVersionTable AS v
LEFT JOIN OrleansMembershipTable AS s
       ON s.DeploymentId = v.DeploymentId AND s.Address = @Address AND s.Port = @Port AND s.Generation = @Generation
WHERE v.DeploymentId = @DeploymentId;
$sql$),

-- Where clients connect: the gateways of the silos in @Status (active).
('GatewaysQueryKey', $sql$
SELECT Address, ProxyPort, Generation
FROM OrleansMembershipTable
WHERE DeploymentId = @DeploymentId AND Status = @Status AND ProxyPort > 0;
$sql$),

-- Forgets silos that are not active and have not been heard from since @IAmAliveTime.
('CleanupDefunctSiloEntriesKey', $sql$
DELETE FROM OrleansMembershipTable
WHERE DeploymentId = @DeploymentId AND IAmAliveTime < @IAmAliveTime AND Status <> 3;
$sql$),

-- The whole cluster, silos first (they reference the version row).
('DeleteMembershipTableEntriesKey', $sql$
DELETE FROM OrleansMembershipTable WHERE DeploymentId = @DeploymentId;
DELETE FROM OrleansMembershipVersionTable WHERE DeploymentId = @DeploymentId;
$sql$)

ON CONFLICT (QueryKey) DO UPDATE SET QueryText = EXCLUDED.QueryText
WHERE q.QueryText IS DISTINCT FROM EXCLUDED.QueryText;
