#!/usr/bin/env bash
# The yardstick: Postfix on this machine moving N messages of S bytes for M recipient domains into
# smtp-sink. Postfix runs as a private instance (own config and queue directories under a temporary
# folder, smtpd on 127.0.0.1 only); every domain is routed to one receiver with a transport map. Needs
# Debian's postfix package and root; Postfix only runs a configuration directory that the default main.cf
# lists in alternate_config_directories, so that line is added to /etc/postfix/main.cf.
#
#   postfix-queue.sh [messages] [domains] [size] [plain|ecdsa|rsa] [-- command ...]
#
# plain: the receiver is smtp-sink itself. ecdsa / rsa: the receiver is a second smtpd of the same
# instance offering STARTTLS with a self-signed ECDSA P-256 or RSA-2048 certificate, in front of
# smtp-sink through smtpd_proxy_filter (smtp-sink cannot do TLS); Postfix's smtp client then runs with
# smtp_tls_security_level = may and smtp_tls_connection_reuse = yes (through tlsproxy), as a TLS-reusing
# MTA does. Two figures, each printed as a RESULT line:
#   postfix-client: the queue filled while delivery is deferred, then released: qmgr and the smtp client
#                   alone draining it, Postfix's counterpart of the engine benchmark;
#   postfix-queue:  smtp-source -> smtpd -> queue -> smtp -> receiver with injection and delivery
#                   overlapping, the counterpart of the end-to-end benchmark.
# TLS_RECEIVER=loopback (with BENCH_DLL set to the built CloudDelivery.Benchmark.dll) makes the receiver
# the benchmark's own STARTTLS sink in a process of its own instead (--sink-only): it keeps up with both
# clients, where the smtpd proxy is what limits them.
# After "--", the command runs while the receiver is still up, with SINK_PORT set to the receiver's port,
# so CloudDelivery's engine meets the very same receiver in the same invocation.
set -euo pipefail
messages=${1:-5000}
domains=${2:-50}
size=${3:-2048}
tls=${4:-plain}
shift $(($# < 4 ? $# : 4))
[[ ${1:-} == "--" ]] && shift
case $tls in plain) variant=plain ;; ecdsa | rsa) variant=tls-$tls ;; *) echo "unknown TLS variant $tls" >&2; exit 2 ;; esac
work=/tmp/clouddelivery-postfix-bench
rm -rf "$work"
if ! postconf -h alternate_config_directories 2>/dev/null | grep -q "$work/etc"; then
  echo "alternate_config_directories = $work/etc" >> /etc/postfix/main.cf
fi
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
sink_port=$(free_port)
smtpd_port=$(free_port)
receiver_port=$sink_port
mkdir -p "$work/etc" "$work/queue" "$work/data"
cp /etc/postfix/master.cf "$work/etc/master.cf"
sed -i "s/^smtp      inet/#smtp      inet/" "$work/etc/master.cf"
echo "127.0.0.1:$smtpd_port inet n - y - - smtpd" >> "$work/etc/master.cf"
cat > "$work/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $work/queue
data_directory = $work/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.loopback.test
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = regexp:$work/etc/relay
transport_maps = regexp:$work/etc/transport
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_dns_support_level = disabled
maillog_file_prefixes = /tmp
maillog_file = $work/maillog
default_destination_concurrency_limit = 20
CONF
if [[ $tls != plain ]]; then
  receiver_port=$(free_port)
  if [[ $tls == ecdsa ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=sink.bench.test \
      -keyout "$work/etc/key.pem" -out "$work/etc/cert.pem" 2>/dev/null
  else
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=sink.bench.test \
      -keyout "$work/etc/key.pem" -out "$work/etc/cert.pem" 2>/dev/null
  fi
  if [[ ${TLS_RECEIVER:-smtpd} == loopback ]]; then
    mkfifo "$work/receiver.in"
    dotnet "$BENCH_DLL" --sink-only --tls $([[ $tls == rsa ]] && echo --rsa) --sink-port "$receiver_port" < "$work/receiver.in" > "$work/receiver.log" 2>&1 &
    exec 9> "$work/receiver.in" # held open: the receiver runs until this script exits and closes it
    until grep -q listening "$work/receiver.log" 2>/dev/null; do sleep 0.2; done
    variant=$variant-loopback
  else
    # The receiver: STARTTLS offered, each transaction passed on to smtp-sink as it arrives (no queue).
    echo "127.0.0.1:$receiver_port inet n - y - - smtpd -o smtpd_tls_security_level=may -o smtpd_tls_chain_files=$work/etc/key.pem,$work/etc/cert.pem -o smtpd_proxy_filter=127.0.0.1:$sink_port -o smtpd_proxy_options=speed_adjust" >> "$work/etc/master.cf"
  fi
  # Connection reuse of TLS sessions needs the tlsproxy service (commented out in Debian's master.cf).
  sed -i "s/^#tlsproxy /tlsproxy /" "$work/etc/master.cf"
  cat >> "$work/etc/main.cf" <<CONF
smtp_tls_security_level = may
smtp_tls_connection_reuse = yes
smtp_tls_loglevel = 0
smtpd_tls_loglevel = 0
CONF
fi
echo '/\.bench\.example$/ OK' > "$work/etc/relay"
echo "/\\.bench\\.example\$/ smtp:[127.0.0.1]:$receiver_port" > "$work/etc/transport"
chown -R postfix "$work/queue" "$work/data" 2>/dev/null || true
script -q -c "postfix -c $work/etc check" /dev/null || true
/usr/sbin/smtp-sink -u postfix "127.0.0.1:$sink_port" 1000 &
sink=$!
trap 'postfix -c "$work/etc" stop >/dev/null 2>&1 || true; kill $sink 2>/dev/null || true; rm -rf "$work"' EXIT
postfix -c "$work/etc" start >/dev/null 2>&1
sleep 2

inject() { # smtp-source, two sessions per domain, as many messages per domain as the split gives
  local per_domain=$((messages / domains)) pids=()
  for d in $(seq 0 $((domains - 1))); do
    /usr/sbin/smtp-source -s 2 -m "$per_domain" -l "$size" -f bench@sender.bench.test -t "user@d$d.bench.example" "127.0.0.1:$smtpd_port" &
    pids+=($!)
  done
  wait "${pids[@]}" || true
}
drain() { until postqueue -c "$work/etc" -p 2>/dev/null | grep -q "Mail queue is empty"; do sleep 0.1; done; }
sent() { grep -c "status=sent" "$work/maillog" || true; }
report() { # mode started finished delivered-before
  python3 - "$@" "$(sent)" "$variant" <<'PY'
import sys
mode, start, done, before, after, variant = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
n = after - before
print(f"{mode} {variant}: {n} delivered in {done-start:.1f} s: {n/(done-start):.0f} deliveries/s")
print(f"RESULT mode={mode} variant={variant} rate={n/(done-start):.0f} cpu_us=- peak_mib=- tx=-")
PY
}

# The client alone: fill the queue with delivery deferred, then release it and time the drain.
postconf -c "$work/etc" -e "defer_transports = smtp"
postfix -c "$work/etc" reload >/dev/null 2>&1
sleep 1
inject
postconf -c "$work/etc" -e "defer_transports ="
postfix -c "$work/etc" reload >/dev/null 2>&1
sleep 1
before=$(sent)
start=$(date +%s.%N)
postqueue -c "$work/etc" -f
drain
report postfix-client "$start" "$(date +%s.%N)" "$before"

# The whole queue: injection and delivery overlapping.
before=$(sent)
start=$(date +%s.%N)
inject
drain
report postfix-queue "$start" "$(date +%s.%N)" "$before"

if [[ $# -gt 0 ]]; then
  SINK_PORT=$receiver_port "$@"
fi
