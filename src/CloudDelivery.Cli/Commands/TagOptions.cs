using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Submission;

namespace CloudDelivery.Cli.Commands;

/// <summary><c>send --tag key=value</c> (repeatable) as the request's tags; the queue checks their bounds.</summary>
internal static class TagOptions
{
    /// <exception cref="SubmissionException">An option is not key=value, or names a key twice.</exception>
    public static Dictionary<string, string>? Parse(string[]? options)
    {
        if (options is not { Length: > 0 })
        {
            return null;
        }
        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var option in options)
        {
            if (!MessageTags.TrySplit(option, out var key, out var value))
            {
                throw new SubmissionException(SubmissionError.InvalidTags, $"--tag {option}: not key=value");
            }
            if (!tags.TryAdd(key, value))
            {
                throw new SubmissionException(SubmissionError.InvalidTags, $"--tag {key} is given twice");
            }
        }
        return tags;
    }
}
