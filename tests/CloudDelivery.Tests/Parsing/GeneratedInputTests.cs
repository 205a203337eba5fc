using CloudDelivery.Fuzz;
using CsCheck;

namespace CloudDelivery.Tests.Parsing;

/// <summary>
/// Every parser of untrusted bytes under a small share of generated inputs (the full run is
/// tests/CloudDelivery.Fuzz): nothing but the documented refusal for bad input, and what is accepted keeps
/// the parser's promises. A failure prints the shrunk input and the seed that reproduces it.
/// </summary>
public sealed class GeneratedInputTests
{
    public static TheoryData<string> Targets() => [.. ParserTargets.All.Select(t => t.Name)];

    [Theory]
    [MemberData(nameof(Targets))]
    public void Parser_refuses_bad_input_only_in_its_documented_way_and_keeps_its_promises(string target)
    {
        var parser = ParserTargets.Get(target);

        // A statement, not a predicate: refusing an input is fine, only an exception fails.
        parser.Inputs.Sample(input => { _ = parser.Check(input); }, iter: 3000, threads: 1);
    }

    [Fact]
    public void The_generated_inputs_reach_the_accepting_paths_of_every_parser()
    {
        // Inputs that the parsers all refuse would test only their first check.
        foreach (var target in ParserTargets.All)
        {
            var accepted = 0;
            target.Inputs.Sample(input =>
            {
                if (target.Check(input))
                {
                    Interlocked.Increment(ref accepted);
                }
            }, iter: 1000, threads: 1);
            Assert.True(accepted >= 20, $"{target.Name}: only {accepted} of 1000 inputs accepted");
        }
    }
}
