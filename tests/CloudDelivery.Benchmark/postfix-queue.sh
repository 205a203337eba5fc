#!/usr/bin/env bash
# The yardstick for the end-to-end benchmark: Postfix's own queue moving N messages of S bytes for M
# recipient domains into smtp-sink on this machine. Postfix runs as a private instance (own config and
# queue directories under a temporary folder, smtpd on 127.0.0.1 only); every domain is routed to the
# sink with a transport map. Needs Debian's postfix package and root; Postfix only runs a configuration
# directory that the default main.cf lists in alternate_config_directories, so that line is added to
# /etc/postfix/main.cf (created if the package was installed with "No configuration"). Prints
# messages/second.
set -euo pipefail
messages=${1:-5000}
domains=${2:-50}
size=${3:-2048}
work=/tmp/clouddelivery-postfix-bench
rm -rf "$work"
if ! postconf -h alternate_config_directories 2>/dev/null | grep -q "$work/etc"; then
  echo "alternate_config_directories = $work/etc" >> /etc/postfix/main.cf
fi
sink_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
smtpd_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
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
echo '/\.bench\.example$/ OK' > "$work/etc/relay"
echo "/\\.bench\\.example\$/ smtp:[127.0.0.1]:$sink_port" > "$work/etc/transport"
chown -R postfix "$work/queue" "$work/data" 2>/dev/null || true
script -q -c "postfix -c $work/etc check" /dev/null || true
/usr/sbin/smtp-sink -u postfix "127.0.0.1:$sink_port" 1000 &
sink=$!
trap 'postfix -c "$work/etc" stop >/dev/null 2>&1 || true; kill $sink 2>/dev/null || true; rm -rf "$work"' EXIT
postfix -c "$work/etc" start
sleep 2
start=$(date +%s.%N)
per_domain=$((messages / domains))
for d in $(seq 0 $((domains - 1))); do
  /usr/sbin/smtp-source -s 2 -m "$per_domain" -l "$size" -f bench@sender.bench.test -t "user@d$d.bench.example" "127.0.0.1:$smtpd_port" &
done
wait $(jobs -p | grep -v "^$sink\$") 2>/dev/null || true
injected=$(date +%s.%N)
until postqueue -c "$work/etc" -p 2>/dev/null | grep -q "Mail queue is empty"; do sleep 0.1; done
done_at=$(date +%s.%N)
sent=$(grep -c "status=sent" "$work/maillog" || true)
python3 - "$start" "$injected" "$done_at" "$sent" <<'PY'
import sys
start, injected, done, sent = map(float, sys.argv[1:5])
print(f"postfix queue: {int(sent)} delivered; injection {injected-start:.1f} s, total {done-start:.1f} s: {sent/(done-start):.0f} deliveries/s")
PY
