#!/usr/bin/env python3
"""Reads benchmark output (RESULT and COST lines, from any number of interleaved runs) on stdin and
prints one Markdown row per mode and variant with the range over the runs: messages/s, CPU µs/message,
peak working set, storage transactions/message, and the cost per million when the mode printed one."""
import collections
import sys

results = collections.OrderedDict()
costs = collections.defaultdict(list)
last = None
for line in sys.stdin:
    line = line.strip()
    if line.startswith("RESULT "):
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        last = (fields["mode"], fields["variant"])
        results.setdefault(last, []).append(fields)
    elif line.startswith("COST ") and last is not None:
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        costs[last].append(float(fields["total"]))


def span(values, fmt="{:.0f}"):
    numbers = sorted(float(v) for v in values if v not in ("-", ""))
    if not numbers:
        return "—"
    low, high = fmt.format(numbers[0]), fmt.format(numbers[-1])
    return low if low == high else f"{low}–{high}"


print("| Mode | Variant | Runs | Messages/s | CPU µs/message | Peak working set MiB | Storage tx/message | $ per million |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (mode, variant), runs in results.items():
    print(f"| {mode} | {variant} | {len(runs)} | {span(r['rate'] for r in runs)} | {span(r['cpu_us'] for r in runs)} "
          f"| {span(r['peak_mib'] for r in runs)} | {span((r['tx'] for r in runs), '{:.2f}')} | {span(costs.get((mode, variant), []), '{:.2f}')} |")
