using CloudDelivery.Smtp;

namespace CloudDelivery.Delivery;

/// <summary>
/// What kind of failure (or delay) a recipient's result is, in terms a sender acts on: events, status and
/// the suppression list use it. Decided from the engine's own <see cref="LocalFailure"/> where the engine
/// decided, else by the first matching receiver-text rule (<see cref="BounceClassifier"/>), else from the
/// enhanced status code (RFC 3463) where there is one and from the basic code otherwise.
/// </summary>
public enum BounceCategory
{
    /// <summary>Delivered: nothing to classify.</summary>
    None,

    /// <summary>The mailbox does not exist or is disabled (X.1.1, X.1.3, X.1.6, X.2.1 permanent).</summary>
    BadMailbox,

    /// <summary>The domain does not exist or takes no mail (X.1.2, X.1.10 null MX).</summary>
    BadDomain,

    /// <summary>The mailbox is over quota (X.2.2).</summary>
    MailboxFull,

    /// <summary>Refused by the receiver's policy or spam filter (X.7.1 and the other X.7 policy codes).</summary>
    PolicyBlock,

    /// <summary>SPF, DKIM or DMARC failed at the receiver (RFC 7372: X.7.20–X.7.26).</summary>
    Authentication,

    /// <summary>A TLS requirement could not be met: STARTTLS, certificate, DANE, MTA-STS, REQUIRETLS (X.7.5, X.7.10, X.7.30).</summary>
    TlsPolicy,

    /// <summary>The receiver asks us to slow down (X.7.28 mail flood; X.2.1 as a temporary reply).</summary>
    Throttled,

    /// <summary>The content or its media type was refused (X.6.x).</summary>
    ContentRejected,

    /// <summary>The message is larger than the receiver takes (X.2.3, X.3.4).</summary>
    MessageTooBig,

    /// <summary>DNS, connection, timeout or the receiver's system being busy (X.4.x, X.3.x temporary).</summary>
    Network,

    /// <summary>Anything else.</summary>
    Other,
}

/// <summary>Classifies recipient results into <see cref="BounceCategory"/> and says which ones suppress an address.</summary>
public static class BounceClassification
{
    /// <summary>
    /// The category of <paramref name="result"/> by the shipped rules (<see cref="BounceClassifier.Default"/>):
    /// for code without a configured classifier. <see cref="BounceCategory.None"/> when it was delivered.
    /// </summary>
    public static BounceCategory Of(RecipientResult result) => BounceClassifier.Default.Classify(result);

    /// <summary>The category of a failing <paramref name="reply"/> by the shipped rules, decided locally or by a server.</summary>
    public static BounceCategory Of(SmtpReply reply, LocalFailure localFailure = LocalFailure.None) => BounceClassifier.Default.Classify(reply, localFailure);

    /// <summary>
    /// What the engine decided without a server (its <see cref="LocalFailure"/>), if that settles the
    /// category: receiver rules never apply to the engine's own failures.
    /// </summary>
    internal static BounceCategory? OfLocalFailure(SmtpReply reply, LocalFailure localFailure) => localFailure switch
    {
        // A permanent DNS answer (NXDOMAIN, null MX) carries its X.1.2 / X.1.10 code: classified by code.
        LocalFailure.Dns or LocalFailure.Connection or LocalFailure.Timeout => reply.IsPermanent ? null : BounceCategory.Network,
        LocalFailure.Tls or LocalFailure.Policy => BounceCategory.TlsPolicy,
        _ => null,
    };

    /// <summary>The category by the codes alone: the enhanced code (RFC 3463) where there is one, else the basic code.</summary>
    public static BounceCategory OfCodes(SmtpReply reply)
    {
        if (reply.IsPositive)
        {
            return BounceCategory.None;
        }
        return reply.EnhancedCode is { } enhanced && TryParse(enhanced, out var subject, out var detail)
            ? OfEnhanced(reply.IsPermanent, subject, detail)
            : OfBasic(reply.Code);
    }

    /// <summary>
    /// True when a permanent failure says the address or its domain does not exist: only then is the
    /// address suppressed. Policy, TLS, content and rate failures never suppress — the same address may
    /// well take the next message.
    /// </summary>
    public static bool SuppressesAddress(RecipientResult result) => BounceClassifier.Default.SuppressesAddress(result);

    /// <summary>Whether a permanent failure of <paramref name="category"/> suppresses the address (see <see cref="SuppressesAddress"/>).</summary>
    public static bool Suppresses(BounceCategory category) => category is BounceCategory.BadMailbox or BounceCategory.BadDomain;

    /// <summary>Every category, in declaration order.</summary>
    public static IReadOnlyList<BounceCategory> Categories { get; } = Enum.GetValues<BounceCategory>();

    /// <summary>The category named <paramref name="name"/> (<see cref="Name"/>'s spelling, ignoring case).</summary>
    public static bool TryParseName(string? name, out BounceCategory category)
    {
        foreach (var candidate in Categories)
        {
            if (string.Equals(Name(candidate), name, StringComparison.OrdinalIgnoreCase))
            {
                category = candidate;
                return true;
            }
        }
        category = BounceCategory.Other;
        return false;
    }

    /// <summary>The category's name in events, status and telemetry: "bad-mailbox", "tls-policy", ….</summary>
    public static string Name(BounceCategory category) => category switch
    {
        BounceCategory.None => "none",
        BounceCategory.BadMailbox => "bad-mailbox",
        BounceCategory.BadDomain => "bad-domain",
        BounceCategory.MailboxFull => "mailbox-full",
        BounceCategory.PolicyBlock => "policy-block",
        BounceCategory.Authentication => "authentication",
        BounceCategory.TlsPolicy => "tls-policy",
        BounceCategory.Throttled => "throttled",
        BounceCategory.ContentRejected => "content-rejected",
        BounceCategory.MessageTooBig => "message-too-big",
        BounceCategory.Network => "network",
        _ => "other",
    };

    // RFC 3463 §3: subject X.1 addressing, X.2 mailbox, X.3 mail system, X.4 network and routing, X.5 mail
    // delivery protocol, X.6 message content or media, X.7 security or policy.
    private static BounceCategory OfEnhanced(bool permanent, int subject, int detail) => (subject, detail) switch
    {
        (1, 1 or 3 or 6) => BounceCategory.BadMailbox, // bad mailbox address, bad syntax, moved (RFC 3463 §3.2)
        (1, 2 or 10) => BounceCategory.BadDomain, // bad destination system (RFC 3463 §3.2); null MX (RFC 7505 §4.2)
        (2, 1) => permanent ? BounceCategory.BadMailbox : BounceCategory.Throttled, // disabled; as 4.2.1, "too fast"
        (2, 2) => BounceCategory.MailboxFull, // RFC 3463 §3.3
        (2, 3) or (3, 4) => BounceCategory.MessageTooBig, // RFC 3463 §3.3, §3.4
        (3, _) or (4, _) => BounceCategory.Network, // RFC 3463 §3.4, §3.5
        (6, _) => BounceCategory.ContentRejected, // RFC 3463 §3.7
        (7, >= 20 and <= 26) => BounceCategory.Authentication, // RFC 7372 §3
        (7, 5 or 10 or 30) => BounceCategory.TlsPolicy, // RFC 3463 §3.8; RFC 5248 X.7.10; RFC 8689 §6
        (7, 28) => BounceCategory.Throttled, // "mail flood detected" (IANA enhanced status codes registry)
        (7, _) => BounceCategory.PolicyBlock, // RFC 3463 §3.8
        _ => BounceCategory.Other,
    };

    private static BounceCategory OfBasic(int code) => code switch
    {
        421 or 450 or 451 or 452 => BounceCategory.Network, // RFC 5321 §4.2.3: service or mailbox unavailable for now
        552 => BounceCategory.MessageTooBig, // "exceeded storage allocation", sent for oversized messages too
        _ => BounceCategory.Other,
    };

    private static bool TryParse(string enhanced, out int subject, out int detail)
    {
        subject = detail = 0;
        var parts = enhanced.Split('.');
        return parts.Length == 3
            && int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out subject)
            && int.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out detail);
    }
}
