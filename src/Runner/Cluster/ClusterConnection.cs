using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Orleans.Configuration;

namespace TorchTrials.Cluster;

/// <summary>How the cluster keeps its membership.</summary>
public enum MembershipKind
{
    /// <summary>Orleans' development clustering on this machine: the first worker is the primary silo.</summary>
    Localhost,

    /// <summary>ADO.NET clustering on PostgreSQL (Npgsql): the membership table lives in the database.</summary>
    Postgres,

    /// <summary>Redis clustering.</summary>
    Redis,
}

/// <summary>
/// The one text that names a cluster (spec key <c>cluster</c>, CLI option <c>--cluster</c>):
/// <c>localhost</c> or <c>localhost:GATEWAY_PORT</c> for development on one machine,
/// <c>postgres://USER:PASSWORD@HOST:PORT/DATABASE</c> for ADO.NET clustering on PostgreSQL (the database holds Orleans'
/// membership tables), <c>redis://HOST:PORT</c> for Redis clustering; each may end in <c>?cluster=ID</c> to run several
/// clusters on one membership store (default id <c>torchtrials</c>).
/// </summary>
public sealed record ClusterConnection
{
    public const string DefaultClusterId = "torchtrials";

    /// <summary>The gateway port of the primary worker under localhost clustering.</summary>
    public const int DefaultGatewayPort = 30000;

    /// <summary>The silo port of the primary worker under localhost clustering.</summary>
    public const int DefaultSiloPort = 11111;

    public required MembershipKind Kind { get; init; }

    /// <summary>The text it was parsed from, password hidden.</summary>
    public required string Display { get; init; }

    public string ClusterId { get; init; } = DefaultClusterId;

    /// <summary>Npgsql connection string (Postgres) or StackExchange.Redis configuration (Redis).</summary>
    public string? ConnectionString { get; init; }

    /// <summary>Localhost: the primary worker's gateway port, the one the controller connects to.</summary>
    public int GatewayPort { get; init; } = DefaultGatewayPort;

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> with one line naming what is wrong.</summary>
    public static ClusterConnection Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        string clusterId = DefaultClusterId;
        var query = trimmed.IndexOf('?', StringComparison.Ordinal);
        if (query >= 0)
        {
            foreach (var part in trimmed[(query + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var kv = part.Split('=', 2);
                if (kv.Length == 2 && kv[0] == "cluster" && kv[1].Length > 0) clusterId = Uri.UnescapeDataString(kv[1]);
                else throw new FormatException($"cluster '{text}': unknown option '{part}' (only ?cluster=ID is known)");
            }
            trimmed = trimmed[..query];
        }
        if (trimmed == "localhost" || trimmed.StartsWith("localhost:", StringComparison.Ordinal))
        {
            int port = DefaultGatewayPort;
            if (trimmed.Length > "localhost".Length
                && (!int.TryParse(trimmed["localhost:".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
                throw new FormatException($"cluster '{text}': the port after localhost: must be a number from 1 to 65535");
            return new ClusterConnection { Kind = MembershipKind.Localhost, Display = trimmed, ClusterId = clusterId, GatewayPort = port };
        }
        if (trimmed.StartsWith("postgres://", StringComparison.Ordinal) || trimmed.StartsWith("postgresql://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(trimmed, UriKind.Absolute, out var uri) || uri.Host.Length == 0 || uri.AbsolutePath.Trim('/').Length == 0)
                throw new FormatException($"cluster '{text}': a PostgreSQL cluster looks like postgres://USER:PASSWORD@HOST:PORT/DATABASE");
            var user = uri.UserInfo.Split(':', 2);
            var builder = new NpgsqlConnectionStringBuilder
            {
                Host = uri.Host,
                Port = uri.Port > 0 ? uri.Port : 5432,
                Database = Uri.UnescapeDataString(uri.AbsolutePath.Trim('/')),
                Username = user[0].Length > 0 ? Uri.UnescapeDataString(user[0]) : null,
                Password = user.Length > 1 ? Uri.UnescapeDataString(user[1]) : null,
            };
            var shown = user.Length > 1 ? trimmed.Replace(":" + user[1] + "@", ":***@", StringComparison.Ordinal) : trimmed;
            return new ClusterConnection { Kind = MembershipKind.Postgres, Display = shown, ClusterId = clusterId, ConnectionString = builder.ConnectionString };
        }
        if (trimmed.StartsWith("redis://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(trimmed, UriKind.Absolute, out var uri) || uri.Host.Length == 0)
                throw new FormatException($"cluster '{text}': a Redis cluster looks like redis://HOST:PORT");
            return new ClusterConnection
            {
                Kind = MembershipKind.Redis, Display = trimmed, ClusterId = clusterId,
                ConnectionString = $"{uri.Host}:{(uri.Port > 0 ? uri.Port : 6379)}",
            };
        }
        throw new FormatException($"cluster '{text}' is not localhost[:PORT], postgres://USER:PASSWORD@HOST:PORT/DATABASE or redis://HOST:PORT");
    }

    public override string ToString() => Display;

    /// <summary>Configures a controller (an Orleans client) for this cluster.</summary>
    internal void Configure(IClientBuilder client)
    {
        client.Services.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = ClusterId;
            o.ServiceId = ClusterId;
        });
        // A dead worker's gateway leaves the client's list soon after membership declares it dead (Orleans: every minute).
        client.Services.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
        switch (Kind)
        {
            case MembershipKind.Localhost:
                client.UseLocalhostClustering(GatewayPort, ClusterId, ClusterId);
                break;
            case MembershipKind.Postgres:
                client.UseAdoNetClustering(o =>
                {
                    o.Invariant = "Npgsql";
                    o.ConnectionString = ConnectionString;
                });
                break;
            case MembershipKind.Redis:
                client.UseRedisClustering(ConnectionString!);
                break;
        }
    }

    /// <summary>Configures a worker's silo for this cluster, listening on <paramref name="endpoint"/>.</summary>
    internal void Configure(ISiloBuilder silo, WorkerEndpoint endpoint)
    {
        silo.Services.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = ClusterId;
            o.ServiceId = ClusterId;
        });
        switch (Kind)
        {
            case MembershipKind.Localhost:
                // The primary worker listens on the well-known ports; every other one on its own and joins the primary.
                var primary = new IPEndPoint(IPAddress.Loopback, DefaultSiloPort + (GatewayPort - DefaultGatewayPort));
                bool isPrimary = endpoint.GatewayPort == GatewayPort;
                silo.UseLocalhostClustering(endpoint.SiloPort, endpoint.GatewayPort, isPrimary ? null : primary, ClusterId, ClusterId);
                return;
            case MembershipKind.Postgres:
                silo.UseAdoNetClustering(o =>
                {
                    o.Invariant = "Npgsql";
                    o.ConnectionString = ConnectionString;
                });
                break;
            case MembershipKind.Redis:
                silo.UseRedisClustering(o => o.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse(ConnectionString!));
                break;
        }
        silo.Configure<EndpointOptions>(o =>
        {
            o.AdvertisedIPAddress = endpoint.Address;
            o.SiloPort = endpoint.SiloPort;
            o.GatewayPort = endpoint.GatewayPort;
        });
    }
}

/// <summary>Where a worker listens: its advertised address, silo port (to other silos) and gateway port (to controllers).</summary>
public sealed record WorkerEndpoint(IPAddress Address, int SiloPort, int GatewayPort) : IDisposable
{
    /// <summary>Held by the localhost primary while it lives, so two workers started at once cannot both become it.</summary>
    internal FileStream? PrimaryLock { get; init; }

    /// <summary>
    /// The endpoint of a worker on <paramref name="connection"/>: under localhost clustering the primary's well-known ports
    /// for the first worker (the one that takes the machine-wide primary lock; the ports must then be free), two free ones
    /// for every other; elsewhere two free ports on <paramref name="address"/>.
    /// </summary>
    /// <remarks>
    /// A port check alone is not enough: Orleans binds its listeners with port reuse, so two workers that both found the
    /// ports free a moment apart would both listen there and both act as primary (seen with two `torchtrials worker`s
    /// started together).
    /// </remarks>
    public static WorkerEndpoint For(ClusterConnection connection, IPAddress? address = null, int? siloPort = null, int? gatewayPort = null)
    {
        address ??= IPAddress.Loopback;
        if (connection.Kind == MembershipKind.Localhost && siloPort is null && gatewayPort is null
            && TryLockPrimary(connection.GatewayPort) is { } primaryLock)
        {
            int primarySilo = ClusterConnection.DefaultSiloPort + (connection.GatewayPort - ClusterConnection.DefaultGatewayPort);
            if (IsFree(IPAddress.Loopback, primarySilo) && IsFree(IPAddress.Loopback, connection.GatewayPort))
                return new WorkerEndpoint(IPAddress.Loopback, primarySilo, connection.GatewayPort) { PrimaryLock = primaryLock };
            primaryLock.Dispose();
        }
        return new WorkerEndpoint(address, siloPort ?? FreePort(address), gatewayPort ?? FreePort(address));
    }

    public void Dispose() => PrimaryLock?.Dispose();

    private static FileStream? TryLockPrimary(int gatewayPort)
    {
        var path = Path.Combine(Path.GetTempPath(), $"torchtrials-localhost-{gatewayPort.ToString(CultureInfo.InvariantCulture)}.lock");
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    internal static int FreePort(IPAddress address)
    {
        using var listener = new TcpListener(address, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool IsFree(IPAddress address, int port)
    {
        try
        {
            using var listener = new TcpListener(address, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
