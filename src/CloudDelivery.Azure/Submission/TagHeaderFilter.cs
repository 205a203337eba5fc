using System.Text;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Azure.Submission;

/// <summary>
/// Takes the <c>X-CloudDelivery-Tags</c> fields out of a message's header section as it streams past,
/// byte by byte, holding back no more than a field name's worth. A line starting with a field name other
/// than the tag header passes as soon as the name differs; a tag field's bytes, with its folded
/// continuation lines (RFC 5322 §2.2.3: a line starting with white space continues the field before it),
/// are dropped and their unfolded text kept for <see cref="MessageTags.ParseHeader"/>, bounded by
/// <see cref="MessageTags.MaxHeaderLength"/>. Input is CRLF-normalised, and only header-section bytes
/// come here.
/// </summary>
internal sealed class TagHeaderFilter
{
    private static readonly byte[] Name = Encoding.ASCII.GetBytes(MessageTags.HeaderName.ToLowerInvariant());

    // A field name may be followed by white space before its colon (RFC 5322 §4.5.3, obsolete syntax).
    private const int MaxHeldWhiteSpace = 16;

    private readonly byte[] held = new byte[Name.Length + MaxHeldWhiteSpace + 1];
    private readonly List<string> fieldValues = [];
    private readonly StringBuilder value = new();
    private int heldLength;
    private int collected;
    private LineState state = LineState.Start;
    private bool inTagField;

    private enum LineState
    {
        Start,
        Name,
        Pass,
        Drop,
    }

    /// <summary>The unfolded values of the tag fields seen so far.</summary>
    public IReadOnlyList<string> FieldValues
    {
        get
        {
            EndField();
            return fieldValues;
        }
    }

    /// <summary>The bytes to pass on for <paramref name="b"/>: none while a name is held or a tag field dropped, held ones when the name differs.</summary>
    /// <exception cref="SubmissionException">The tag fields hold more than <see cref="MessageTags.MaxHeaderLength"/> characters.</exception>
    public ReadOnlySpan<byte> Accept(byte b)
    {
        if (state == LineState.Start)
        {
            state = StartLine(b);
        }
        switch (state)
        {
            case LineState.Drop:
                if (b == '\n')
                {
                    state = LineState.Start;
                }
                else if (b != '\r')
                {
                    Collect(b);
                }
                return [];
            case LineState.Name:
                return HoldName(b);
            default:
                if (b == '\n')
                {
                    state = LineState.Start;
                }
                held[0] = b;
                return held.AsSpan(0, 1);
        }
    }

    /// <summary>At the end of the input: what is held back of a field name, to pass on.</summary>
    public ReadOnlySpan<byte> Flush()
    {
        var rest = held.AsSpan(0, state == LineState.Name ? heldLength : 0);
        state = LineState.Pass;
        return rest;
    }

    private LineState StartLine(byte b)
    {
        if (b is (byte)' ' or (byte)'\t')
        {
            return inTagField ? LineState.Drop : LineState.Pass;
        }
        EndField();
        heldLength = 0;
        // CR starts the empty line that ends the header section (or a stray CR): nothing to hold.
        return b == '\r' ? LineState.Pass : LineState.Name;
    }

    private ReadOnlySpan<byte> HoldName(byte b)
    {
        held[heldLength++] = b;
        var i = heldLength - 1;
        var lower = b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b | 0x20) : b;
        var stillName = i < Name.Length
            ? lower == Name[i]
            : b is (byte)' ' or (byte)'\t' && heldLength < held.Length;
        if (i >= Name.Length && b == ':')
        {
            state = LineState.Drop;
            inTagField = true;
            return [];
        }
        if (stillName)
        {
            return [];
        }
        state = b == '\n' ? LineState.Start : LineState.Pass;
        return held.AsSpan(0, heldLength);
    }

    private void Collect(byte b)
    {
        if (++collected > MessageTags.MaxHeaderLength)
        {
            throw new SubmissionException(SubmissionError.InvalidTags, $"{MessageTags.HeaderName} is longer than {MessageTags.MaxHeaderLength} characters");
        }
        // Bytes beyond ASCII stay recognisable as such, for the bounds check to refuse.
        value.Append((char)b);
    }

    private void EndField()
    {
        if (inTagField)
        {
            fieldValues.Add(value.ToString());
            value.Clear();
            inTagField = false;
        }
    }
}
