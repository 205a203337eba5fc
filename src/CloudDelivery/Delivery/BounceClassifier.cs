using CloudDelivery.Smtp;

namespace CloudDelivery.Delivery;

/// <summary>
/// Classifies failing replies into <see cref="BounceCategory"/>: the enhanced status code (RFC 3463) and a
/// rules file of known receiver texts. The engine, the queue and telemetry all ask the configured one.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1822", Justification = "Instance members: the receiver-text rules this classifier is loaded with arrive next.")]
public sealed class BounceClassifier
{
    /// <summary>The shipped rules.</summary>
    public static BounceClassifier Default { get; } = new();

    /// <summary>The category of a failing <paramref name="reply"/>, decided locally or by a server.</summary>
    public BounceCategory Classify(SmtpReply reply, LocalFailure localFailure = LocalFailure.None) => BounceClassification.Of(reply, localFailure);

    /// <summary>The category of <paramref name="result"/>: <see cref="BounceCategory.None"/> when it was delivered.</summary>
    public BounceCategory Classify(RecipientResult result) =>
        result.Status == RecipientStatus.Delivered ? BounceCategory.None : Classify(result.Reply, result.LocalFailure);
}
