using System.Diagnostics;
using CloudDelivery.Addressing;
using CloudDelivery.Tests.Addressing;
using CloudDelivery.Tests.Queue;
using CsCheck;
using Xunit.Abstractions;

namespace CloudDelivery.Tests.Fuzz;

/// <summary>
/// A fact that runs only when CLOUDDELIVERY_FUZZ is set: long generated-input runs are a target of their
/// own (<c>CLOUDDELIVERY_FUZZ=1 dotnet test tests/CloudDelivery.Tests --filter "FullyQualifiedName~Fuzz"</c>),
/// not part of CI, where a small share of the same generators runs in the parsers' own tests.
/// </summary>
public sealed class FuzzFactAttribute : FactAttribute
{
    public FuzzFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CLOUDDELIVERY_FUZZ")))
        {
            Skip = "set CLOUDDELIVERY_FUZZ=1 to run the long generated-input runs";
        }
    }
}

/// <summary>
/// At least 100,000 generated inputs per parser of untrusted bytes in this area (address grammar, submission
/// JSON), counting crashes (any exception but the documented refusal) and hangs (an input taking over a
/// second); both must be zero.
/// </summary>
public class UntrustedParserFuzzTests(ITestOutputHelper output)
{
    private const long Inputs = 200_000;
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(1);

    [FuzzFact]
    public void Address_parser() => Run("address parser", EmailAddressTests.Inputs, text =>
    {
        if (EmailAddress.TryParse(text, out var address, out _))
        {
            EmailAddressTests.AssertRoundTrips(address);
        }
    });

    [FuzzFact]
    public void Submission_json_parser() => Run("submission JSON parser", SubmissionJsonParserTests.Inputs, bytes => SubmissionJsonParserTests.Parse(bytes));

    private void Run<T>(string name, Gen<T> inputs, Action<T> parse)
    {
        long crashes = 0, hangs = 0, total = 0;
        string? firstCrash = null;
        inputs.Sample(input =>
        {
            var clock = Stopwatch.StartNew();
            try
            {
                parse(input);
            }
            catch (Exception e)
            {
                if (Interlocked.Increment(ref crashes) == 1)
                {
                    firstCrash = $"{e.GetType().Name}: {e.Message} for {Check.Print(input)}";
                }
            }
            if (clock.Elapsed > Hang)
            {
                Interlocked.Increment(ref hangs);
            }
            Interlocked.Increment(ref total);
        }, iter: Inputs);
        output.WriteLine($"{name}: {total} inputs, {crashes} crashes, {hangs} hangs{(firstCrash is null ? string.Empty : $"; first: {firstCrash}")}");
        Assert.True(total >= 100_000);
        Assert.Equal(0, crashes);
        Assert.Equal(0, hangs);
    }
}
