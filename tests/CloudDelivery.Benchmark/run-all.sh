#!/usr/bin/env bash
# Every benchmark mode side by side with Postfix, in interleaved rounds, then one Markdown table of the
# ranges (summarise.py). Builds once; needs root, Debian's postfix package and `npm ci` (Azurite) for the
# modes through storage. Nothing else should run on the machine meanwhile.
#
#   run-all.sh [rounds] [messages]          e.g. run-all.sh 3 5000; the raw output goes to run-all.log
set -euo pipefail
rounds=${1:-3}
messages=${2:-5000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log=${LOG:-$root/run-all.log}
dotnet build -c Release "$here" -v q -nologo >/dev/null
dll=$here/bin/Release/net10.0/CloudDelivery.Benchmark.dll
bench() { dotnet "$dll" "$@"; }
export BENCH_DLL=$dll TLS_RECEIVER=loopback
: > "$log"
for round in $(seq 1 "$rounds"); do
  {
    echo "== round $round of $rounds: $(date -u +%FT%TZ)"
    # Plaintext: the loopback limit (smtp-source -> smtp-sink), the engine into smtp-sink, Postfix's queue
    # and the whole service end to end into smtp-sink.
    bench --messages "$messages" --domains 50
    bash "$here/postfix-queue.sh" "$messages" 50 2048 plain -- \
      bash -c "dotnet $dll --end-to-end --messages $messages --domains 50 --sink-port \$SINK_PORT"
    # STARTTLS on every connection: Postfix's TLS-reusing smtp client and queue, then the engine, the
    # service with in-process submission and the service over HTTP, all into the same receiver.
    for key in ecdsa rsa; do
      flags="--tls $([[ $key == rsa ]] && echo --rsa || true)"
      bash "$here/postfix-queue.sh" "$messages" 50 2048 "$key" -- bash -c "
        dotnet $dll $flags --messages $messages --domains 50 --sink-port \$SINK_PORT
        if [[ $key == ecdsa ]]; then
          dotnet $dll --end-to-end $flags --messages $messages --domains 50 --sink-port \$SINK_PORT
          dotnet $dll --http $flags --messages $messages --domains 50 --sink-port \$SINK_PORT
        fi"
    done
    # Cold destinations, a tarpit beside healthy domains, a backlog of 10k and 100k.
    bench --cold --messages "$messages"
    bench --tarpit --messages "$messages" --domains 50
    bench --backlog 10000 --messages 2000 --domains 20
    bench --backlog 100000 --messages 2000 --domains 20
    # One hot domain (half the mail) drained by K = 1, 2, 4 shards: as fast as the receiver answers, and
    # with a receiver that takes 50 ms to answer DATA (as a distant big receiver does).
    bench --hot-domain --messages "$messages" --domains 50
    bench --hot-domain --messages "$messages" --domains 50 --latency-ms 50
  } 2>&1 | tee -a "$log"
done
python3 "$here/summarise.py" < "$log"
