using CloudDelivery.Telemetry;

namespace CloudDelivery.Dns;

/// <summary>
/// Settings of the resolver self-check, bound from CloudDelivery:Delivery:ResolverCheck. The two names
/// must be public names whose DNSSEC state is known and stable: one correctly signed, one deliberately
/// broken (its signatures do not validate), as the DNSSEC test domains of the operators of the root and
/// large resolvers are.
/// </summary>
public sealed class ResolverCheckOptions
{
    /// <summary>A DNSSEC-signed name: a validating resolver answers it with the AD bit (RFC 4035 §3.2.3).</summary>
    public string SignedName { get; set; } = "ietf.org";

    /// <summary>A name with bogus signatures: a validating resolver answers SERVFAIL (RFC 4035 §5.5).</summary>
    public string BrokenName { get; set; } = "dnssec-failed.org";

    /// <summary>Time between two checks of a running service; the first runs at start-up.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>False: the service never checks and reports the state "disabled".</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>What is wrong with these settings, one line each, naming the key under <paramref name="section"/>.</summary>
    public IEnumerable<string> Problems(string section)
    {
        if (!Enabled)
        {
            yield break;
        }
        foreach (var (name, value) in new[] { (nameof(SignedName), SignedName), (nameof(BrokenName), BrokenName) })
        {
            if (!IsDomainName(value))
            {
                yield return $"{section}:{name} {value}: expected a domain name, e.g. {(name == nameof(SignedName) ? "ietf.org" : "dnssec-failed.org")}";
            }
        }
        if (Interval <= TimeSpan.Zero)
        {
            yield return $"{section}:{nameof(Interval)} {Interval}: expected a positive time span, e.g. 00:15:00";
        }
    }

    private static bool IsDomainName(string? name) =>
        !string.IsNullOrWhiteSpace(name) && name.TrimEnd('.').Length is > 0 and <= 253
        && name.TrimEnd('.').Split('.').All(label => label.Length is > 0 and <= 63 && label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'));
}

/// <summary>What is known of whether the configured resolver validates DNSSEC.</summary>
public enum ResolverValidation
{
    /// <summary>No check has finished yet.</summary>
    Unchecked,

    /// <summary>The check is switched off (ResolverCheck:Enabled false).</summary>
    Disabled,

    /// <summary>The signed name came with AD and the broken name failed: DANE works.</summary>
    Validating,

    /// <summary>The signed name came without AD, or the broken name resolved: no answer is ever authentic, DANE is off.</summary>
    NotValidating,

    /// <summary>The resolver gave no usable answer for the signed name (timeout, refusal, SERVFAIL).</summary>
    Unreachable,
}

/// <summary>The words health, metrics, logs and <c>probe</c> use for a <see cref="ResolverValidation"/>.</summary>
public static class ResolverValidationNames
{
    public static string Name(this ResolverValidation state) => state switch
    {
        ResolverValidation.Unchecked => "unchecked",
        ResolverValidation.Disabled => "disabled",
        ResolverValidation.Validating => "validating",
        ResolverValidation.NotValidating => "not-validating",
        ResolverValidation.Unreachable => "unreachable",
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, null),
    };
}

/// <summary>The outcome of one self-check.</summary>
/// <param name="State">Validating, NotValidating or Unreachable.</param>
/// <param name="Resolver">The resolver asked: its address, or "system".</param>
/// <param name="CheckedAt">When the check finished.</param>
/// <param name="Detail">What each name got, in words.</param>
public sealed record ResolverCheckResult(ResolverValidation State, string Resolver, DateTimeOffset CheckedAt, string Detail)
{
    /// <summary>One line, e.g. "resolver 127.0.0.1:53: validating (ietf.org authentic, dnssec-failed.org SERVFAIL)".</summary>
    public override string ToString() => $"resolver {Resolver}: {State.Name()} ({Detail})";
}

/// <summary>
/// Checks that the one configured resolver validates DNSSEC. Only a validating resolver sets the AD bit
/// (RFC 4035 §3.2.3, RFC 6840 §5.7), and only AD makes records "authentic" for DANE (RFC 7672 §2.1.1):
/// behind a resolver that does not validate, as Azure's default one, DANE is silently never used. The
/// check asks for a signed name, which must come with AD, and for a name with bogus signatures, which a
/// validating resolver must refuse with SERVFAIL (RFC 4035 §5.5) — a resolver that merely passes on an
/// upstream's AD bit would still resolve it.
/// </summary>
public sealed class ResolverSelfCheck(DnsResolver resolver, ResolverCheckOptions options, TimeProvider? time = null, DeliveryMetrics? metrics = null)
{
    private readonly TimeProvider time = time ?? TimeProvider.System;

    /// <summary>The resolver checked, as health and metrics name it: its address, or "system".</summary>
    public string ResolverName { get; } = resolver.Server?.ToString() ?? "system";

    public ResolverCheckOptions Options => options;

    /// <summary>
    /// Asks for both names at once, so the whole check takes at most the resolver's lookup timeout, and
    /// counts the result on <c>clouddelivery.resolver.checks</c>. Never throws for DNS trouble: that is a result.
    /// </summary>
    public async Task<ResolverCheckResult> CheckAsync(CancellationToken cancellationToken)
    {
        // MX: one question per name (an address lookup asks two), small answers, and any answer counts —
        // NODATA for a signed name is authenticated too (RFC 4035 §3.1.3).
        var signedTask = resolver.LookupMxAsync(options.SignedName, cancellationToken);
        var brokenTask = resolver.LookupMxAsync(options.BrokenName, cancellationToken);
        var signed = await signedTask;
        var broken = await brokenTask;
        var (state, detail) = Judge(signed, broken);
        metrics?.ResolverChecks.Add(1, new KeyValuePair<string, object?>("result", state.Name()), new KeyValuePair<string, object?>("resolver", ResolverName));
        return new ResolverCheckResult(state, ResolverName, time.GetUtcNow(), detail);
    }

    private (ResolverValidation State, string Detail) Judge(DnsLookup<MxRecord> signed, DnsLookup<MxRecord> broken)
    {
        var signedName = options.SignedName;
        var brokenName = options.BrokenName;
        if (signed.Failed)
        {
            // A resolver that cannot answer a signed, well-known name gives us nothing to judge by.
            return (ResolverValidation.Unreachable, $"{signedName}: {signed.Error}{Extended(signed)}");
        }
        if (!signed.Authentic)
        {
            return (ResolverValidation.NotValidating, $"{signedName} answered without AD: the resolver does not validate DNSSEC");
        }
        if (!broken.Failed)
        {
            return (ResolverValidation.NotValidating, $"{signedName} authentic, but {brokenName} resolved: a validating resolver answers it SERVFAIL");
        }
        return (ResolverValidation.Validating, $"{signedName} authentic, {brokenName} {FailureWords(broken)}");
    }

    private static string FailureWords(DnsLookup<MxRecord> lookup) =>
        // DnsResolver words a SERVFAIL answer "MX lookup: ServerFailure"; a timeout or refusal is said as it is.
        (lookup.Error ?? string.Empty).EndsWith(nameof(DnsClient.DnsHeaderResponseCode.ServerFailure), StringComparison.Ordinal)
            ? "SERVFAIL" + Extended(lookup)
            : $"failed ({lookup.Error}){Extended(lookup)}";

    private static string Extended<T>(DnsLookup<T> lookup) => lookup.ExtendedError is { } e ? $" with extended error {e}" : string.Empty;
}
