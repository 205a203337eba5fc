using System.Globalization;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// Durations as operators type them: a number and a unit, s, m, h, d or w, repeated for sums ("90s", "2h",
/// "1d12h"). No unit and no sign: "30" is refused, because it means minutes to one operator and seconds to
/// the next.
/// </summary>
internal static class OperatorDuration
{
    /// <summary>The longest duration taken: far beyond any retention, and well inside <see cref="TimeSpan"/>.</summary>
    public static readonly TimeSpan Max = TimeSpan.FromDays(3650);

    public static bool TryParse(string? text, out TimeSpan duration, out string error)
    {
        duration = TimeSpan.Zero;
        error = string.Empty;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "a duration is empty (expected e.g. 30m, 2h, 1d)";
            return false;
        }
        var position = 0;
        while (position < text.Length)
        {
            var start = position;
            while (position < text.Length && char.IsAsciiDigit(text[position]))
            {
                position++;
            }
            // Nine digits at most: the sum is checked against Max below, and no digit run can overflow a long.
            if (position == start || position - start > 9 || position == text.Length)
            {
                error = $"{text} is not a duration (expected a number and a unit s, m, h, d or w, e.g. 30m, 2h, 1d)";
                return false;
            }
            var number = long.Parse(text.AsSpan(start, position - start), NumberStyles.None, CultureInfo.InvariantCulture);
            long? seconds = text[position] switch
            {
                's' => number,
                'm' => number * 60,
                'h' => number * 3600,
                'd' => number * 86400,
                'w' => number * 7 * 86400,
                _ => null,
            };
            if (seconds is null)
            {
                error = $"{text}: unknown unit '{text[position]}' (use s, m, h, d or w)";
                return false;
            }
            position++;
            duration += TimeSpan.FromSeconds(Math.Min(seconds.Value, (long)Max.TotalSeconds + 1));
            if (duration > Max)
            {
                error = $"{text} is longer than {Max.TotalDays:0} days";
                return false;
            }
        }
        return true;
    }

    /// <summary>A System.CommandLine parser for an option of this type: errors are the option's parse errors.</summary>
    public static TimeSpan? Parse(System.CommandLine.Parsing.ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : null;
        if (TryParse(text, out var duration, out var error))
        {
            return duration;
        }
        result.AddError(error);
        return null;
    }
}
