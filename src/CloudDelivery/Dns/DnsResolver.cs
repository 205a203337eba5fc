using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;
using DnsClient.Protocol.Options;

namespace CloudDelivery.Dns;

/// <summary>Where and how <see cref="DnsResolver"/> asks its questions.</summary>
public sealed class DnsResolverOptions
{
    /// <summary>
    /// The resolver to ask, e.g. a local validating resolver (unbound) at 127.0.0.1:53. Null uses the
    /// system's configured name servers. DANE needs a validating resolver: only its AD bit makes records
    /// "authentic" (RFC 7672 §2.1.1).
    /// </summary>
    public IPEndPoint? Server { get; set; }

    /// <summary>Time allowed for one query before it is retried or fails.</summary>
    public TimeSpan QueryTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often a timed-out query is repeated.</summary>
    public int Retries { get; set; } = 2;

    /// <summary>
    /// Time allowed for one lookup as a whole: every try, every server of the system's list, and the TCP
    /// retry of a truncated answer. Null: <see cref="QueryTimeout"/> × (<see cref="Retries"/> + 1).
    /// </summary>
    public TimeSpan? LookupTimeout { get; set; }

    /// <summary>The bound <see cref="DnsResolver"/> applies to one lookup.</summary>
    public TimeSpan EffectiveLookupTimeout => LookupTimeout ?? QueryTimeout * (Retries + 1);
}

/// <summary>
/// The one DNS resolver of CloudDelivery: every MX, A/AAAA, CNAME, TLSA and TXT lookup of the engine, and
/// the address lookup of the MTA-STS policy host, goes through an instance of this class, so operators and
/// tests can point all of it at one (validating) resolver.
/// </summary>
/// <remarks>
/// Queries set the DO bit (RFC 3225) so a validating resolver reports validation with the AD bit
/// (RFC 6840 §5.7). No caching happens here: the configured resolver caches, and an MTA must see record
/// changes (an MTA-STS id, a new MX) as soon as that resolver does.
/// </remarks>
public sealed class DnsResolver
{
    private const int ExtendedDnsErrorOptionCode = 15; // RFC 8914 §2

    private readonly LookupClient client;

    public DnsResolver(DnsResolverOptions options)
    {
        var clientOptions = options.Server is null ? new LookupClientOptions() : new LookupClientOptions(options.Server);
        clientOptions.UseCache = false;
        clientOptions.RequestDnsSecRecords = true;
        clientOptions.ThrowDnsErrors = false;
        clientOptions.ContinueOnDnsError = options.Server is null;
        clientOptions.ContinueOnEmptyResponse = false;
        clientOptions.UseTcpFallback = true;
        clientOptions.Timeout = options.QueryTimeout;
        clientOptions.Retries = options.Retries;
        // Answers are bounded in size by the protocol: UDP by the EDNS buffer we advertise (RFC 6891 §6.2.5),
        // TCP by its two-byte length prefix (RFC 1035 §4.2.2), so at most 64 KiB per answer.
        clientOptions.ExtendedDnsBufferSize = MaxUdpAnswerBytes;
        client = new LookupClient(clientOptions);
        Server = options.Server;
        lookupTimeout = options.EffectiveLookupTimeout;
    }

    /// <summary>The UDP payload size advertised in EDNS (RFC 6891 §6.2.5); larger answers come truncated and are asked again over TCP.</summary>
    public const int MaxUdpAnswerBytes = 4096;

    private readonly TimeSpan lookupTimeout;

    /// <summary>The configured resolver, or null for the system's.</summary>
    public IPEndPoint? Server { get; }

    /// <summary>
    /// The CNAME target of <paramref name="name"/>, if the name is an alias. NotFound means the name is not
    /// an alias (it may still have other records, or not exist).
    /// </summary>
    public async Task<DnsLookup<string>> LookupCnameAsync(string name, CancellationToken cancellationToken)
    {
        var response = await QueryAsync(name, QueryType.CNAME, cancellationToken);
        if (response.Failure is not null)
        {
            return Fail<string>(response);
        }
        var targets = response.Answer!.Answers.OfType<CNameRecord>()
            .Where(r => SameName(r.DomainName.Value, name))
            .Select(r => TrimDot(r.CanonicalName.Value))
            .Take(1)
            .ToArray();
        return Make(response, targets);
    }

    /// <summary>MX records of <paramref name="name"/>, in answer order (the caller sorts by preference).</summary>
    public async Task<DnsLookup<MxRecord>> LookupMxAsync(string name, CancellationToken cancellationToken)
    {
        var response = await QueryAsync(name, QueryType.MX, cancellationToken);
        if (response.Failure is not null)
        {
            return Fail<MxRecord>(response);
        }
        var records = response.Answer!.Answers.OfType<DnsClient.Protocol.MxRecord>()
            .Select(r => new MxRecord(r.Preference, TrimDot(r.Exchange.Value)))
            .ToArray();
        return Make(response, records);
    }

    /// <summary>
    /// IPv4 and IPv6 addresses of <paramref name="name"/> (A and AAAA asked together). Authentic only when
    /// both answers are. Found if either family has addresses.
    /// </summary>
    public async Task<DnsLookup<IPAddress>> LookupAddressesAsync(string name, CancellationToken cancellationToken)
    {
        var v4Task = QueryAsync(name, QueryType.A, cancellationToken);
        var v6Task = QueryAsync(name, QueryType.AAAA, cancellationToken);
        var v4 = await v4Task;
        var v6 = await v6Task;
        var addresses = new List<IPAddress>();
        if (v4.Answer is not null)
        {
            addresses.AddRange(v4.Answer.Answers.OfType<ARecord>().Select(r => r.Address));
        }
        if (v6.Answer is not null)
        {
            addresses.AddRange(v6.Answer.Answers.OfType<AaaaRecord>().Select(r => r.Address));
        }
        var authentic = v4.Authentic && v6.Authentic;
        if (addresses.Count > 0)
        {
            return new DnsLookup<IPAddress>(DnsLookupStatus.Found, addresses, authentic);
        }
        var failed = v4.Failure is not null ? v4 : v6.Failure is not null ? v6 : null;
        if (failed is not null)
        {
            return Fail<IPAddress>(failed);
        }
        return new DnsLookup<IPAddress>(DnsLookupStatus.NotFound, [], authentic, nameDoesNotExist: v4.NameDoesNotExist || v6.NameDoesNotExist);
    }

    /// <summary>TLSA records at <paramref name="name"/> (e.g. "_25._tcp.mx.example.com").</summary>
    public async Task<DnsLookup<TlsaRecord>> LookupTlsaAsync(string name, CancellationToken cancellationToken)
    {
        var response = await QueryAsync(name, QueryType.TLSA, cancellationToken);
        if (response.Failure is not null)
        {
            return Fail<TlsaRecord>(response);
        }
        var records = response.Answer!.Answers.OfType<DnsClient.Protocol.TlsaRecord>()
            .Select(r => new TlsaRecord((byte)r.CertificateUsage, (byte)r.Selector, (byte)r.MatchingType, r.CertificateAssociationData.ToArray()))
            .ToArray();
        return Make(response, records);
    }

    /// <summary>TXT records at <paramref name="name"/>, each record's character-strings joined (RFC 7208 §3.3 style).</summary>
    public async Task<DnsLookup<string>> LookupTxtAsync(string name, CancellationToken cancellationToken)
    {
        var response = await QueryAsync(name, QueryType.TXT, cancellationToken);
        if (response.Failure is not null)
        {
            return Fail<string>(response);
        }
        var records = response.Answer!.Answers.OfType<TxtRecord>()
            .Select(r => string.Concat(r.Text))
            .ToArray();
        return Make(response, records);
    }

    private static DnsLookup<T> Make<T>(QueryOutcome response, IReadOnlyList<T> records) =>
        new(records.Count > 0 ? DnsLookupStatus.Found : DnsLookupStatus.NotFound, records, response.Authentic, nameDoesNotExist: records.Count == 0 && response.NameDoesNotExist);

    private static DnsLookup<T> Fail<T>(QueryOutcome response) =>
        new(DnsLookupStatus.Failed, [], authentic: false, response.Failure, response.ExtendedError);

    private async Task<QueryOutcome> QueryAsync(string name, QueryType type, CancellationToken cancellationToken)
    {
        var fqdn = name.EndsWith('.') ? name : name + ".";
        IDnsQueryResponse answer;
        // DnsClient's own timeout is per try and per server; a server that answers UDP with TC set and then
        // never answers over TCP, or a long server list, would add them up. One deadline bounds the lookup.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(lookupTimeout);
        var query = client.QueryAsync(fqdn, type, QueryClass.IN, deadline.Token);
        try
        {
            answer = await query.WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The abandoned query ends on its own token; its outcome is of no interest any more.
            _ = query.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            return new QueryOutcome(null, false, $"{type} lookup timed out after {lookupTimeout.TotalSeconds:0.#} s", null);
        }
        catch (Exception e) when (e is DnsResponseException or DnsResponseParseException or SocketException or IOException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            // Timeouts, unreachable servers, and answers DnsClient cannot parse (a hostile or broken
            // server) all end as a failed lookup, never as an exception out of the engine.
            return new QueryOutcome(null, false, $"{type} lookup failed: {e.Message}", null);
        }
        var authentic = answer.Header.IsAuthenticData;
        var code = answer.Header.ResponseCode;
        if (code == DnsHeaderResponseCode.NoError || code == DnsHeaderResponseCode.NotExistentDomain)
        {
            // NXDOMAIN and NODATA both mean "no such records": answer with an empty record list.
            return new QueryOutcome(answer, authentic, null, null);
        }
        return new QueryOutcome(null, false, $"{type} lookup: {code}", ReadExtendedError(answer));
    }

    private static ExtendedDnsError? ReadExtendedError(IDnsQueryResponse answer)
    {
        foreach (var opt in answer.Additionals.OfType<OptRecord>())
        {
            var data = opt.Data;
            if (data is null)
            {
                continue;
            }
            // OPT RDATA is a sequence of {code u16, length u16, value} (RFC 6891 §6.1.2).
            var offset = 0;
            while (offset + 4 <= data.Length)
            {
                var code = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(offset));
                var length = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(offset + 2));
                offset += 4;
                if (offset + length > data.Length)
                {
                    break;
                }
                if (code == ExtendedDnsErrorOptionCode && length >= 2)
                {
                    var info = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(offset));
                    var text = System.Text.Encoding.UTF8.GetString(data, offset + 2, length - 2).TrimEnd('\0');
                    return new ExtendedDnsError(info, text);
                }
                offset += length;
            }
        }
        return null;
    }

    private static bool SameName(string a, string b) => string.Equals(TrimDot(a), TrimDot(b), StringComparison.OrdinalIgnoreCase);

    private static string TrimDot(string name) => name.EndsWith('.') ? name[..^1] : name;

    private sealed record QueryOutcome(IDnsQueryResponse? Answer, bool Authentic, string? Failure, ExtendedDnsError? ExtendedError)
    {
        public bool NameDoesNotExist => Answer?.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain;
    }
}
