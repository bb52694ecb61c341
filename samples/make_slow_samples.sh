#!/bin/bash
# make_slow_samples.sh — record the "what limited this connection" captures into samples/.
#
#   sudo bash samples/make_slow_samples.sh [OUTDIR]      (default: the directory of this script)
#
# Needs root, iproute2 (ip, tc with the tbf qdisc), tcpdump, python3 (standard library only),
# coreutils `timeout`; tshark for the oracle files. Takes about a minute, bounded to 200 s.
# ONLY="name ..." re-records just those captures.
#
# Test bed: two network namespaces (client $NS_A = sender of the uploads, server $NS_B) joined by
# tools/tapnetem.py (user-space delay and loss per port class; this kernel has no netem). Every
# capture is taken with tcpdump on the client's TAP device, i.e. at the sender of the uploads.
# One capture per limiting cause (docs/diagnosis.md):
#   slow_rwnd       upload to a reader with a 16 KB SO_RCVBUF reading as fast as it can, 25 ms one way
#   slow_bandwidth  upload through a kernel `tbf` (8 Mbit/s, 300 KB queue) on the sender's TAP, big rcvbuf
#   slow_loss       upload, 2% loss each way (relay), 10 ms one way
#   slow_app        the sender writes 1000 bytes every 30 ms (TCP_NODELAY), 10 ms one way
#   slow_rto        upload through an 8 Mbit/s `tbf`; 0.5 s in, the return path drops every frame for 4 s
#                   (a `tbf` on the receiver's TAP whose bucket is smaller than any frame): RTO back-off
#   slow_latency    20 request/response connections (1 request, 3000-byte answer) over 50 ms one way
#   slow_server     one connection, 5 requests, the server thinks 400 ms before each answer, 5 ms one way
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$(mkdir -p "${1:-$HERE}" && cd "${1:-$HERE}" && pwd)
TOOLS=$HERE/tools
NS_A=${NS_A:-slow20_a} NS_B=${NS_B:-slow20_b}     # namespaces created (and deleted) here
TAP_A=${TAP_A:-s20a} TAP_B=${TAP_B:-s20b}         # their TAP devices
A4=10.200.0.1 B4=10.200.0.2
PY=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1

CAPTURES=(slow_rwnd slow_bandwidth slow_loss slow_app slow_rto slow_latency slow_server)
if [ -n "${ONLY:-}" ]; then
  for n in $ONLY; do [[ " ${CAPTURES[*]} " == *" $n "* ]] || { echo "make_slow_samples: unknown capture $n" >&2; exit 2; }; done
  read -r -a CAPTURES <<< "$ONLY"
fi

die() { echo "make_slow_samples: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, TAP devices, tc, tcpdump)"
for c in ip tc tcpdump timeout "$PY"; do command -v "$c" >/dev/null || die "missing $c"; done

if [ -z "${MAKE_SLOW_INNER:-}" ]; then
  MAKE_SLOW_INNER=1 exec timeout -s TERM 200 bash "${BASH_SOURCE[0]}" "$@"
fi

WORK=$(mktemp -d /tmp/make_slow_samples.XXXXXX)
NEW=$WORK/out; mkdir -p "$NEW"
RELAY_PID=
OK=0

. "$TOOLS/cleanup.sh"
bed_traps make_slow_samples

ina() { ip netns exec "$NS_A" "$@"; }
inb() { ip netns exec "$NS_B" "$@"; }
client() { # SECONDS CMD...: a bounded client in the client namespace
  ip netns exec "$NS_A" timeout "$@" >> "$WORK/clients.log" 2>&1 &
  wait $!
  local rc=$?
  tail -n 1 "$WORK/clients.log"
  return $rc
}
server() { # LOG SECONDS CMD...: a bounded server in the server namespace; sets SRV_PID
  local log=$1; shift
  ip netns exec "$NS_B" timeout "$@" > "$log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 100); do grep -q READY "$log" 2>/dev/null && return 0; sleep 0.1; done
  die "server did not start: $(cat "$log")"
}
server_down() { kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; }

bed_up() {
  ip netns del "$NS_A" 2>/dev/null; ip netns del "$NS_B" 2>/dev/null
  ip netns add "$NS_A" && ip netns add "$NS_B" || die "ip netns add failed"
  # port classes (client ports stay >= 10000): delay is one way, loss applies each way
  "$PY" "$TOOLS/tapnetem.py" --ns-a "$NS_A" --ns-b "$NS_B" --tap-a "$TAP_A" --tap-b "$TAP_B" \
      --delay-ms 2 --seed 7 --max-seconds 190 \
      --class 5101:delay=25 --class 5102:delay=5 --class 5103:loss=0.02,delay=10 \
      --class 5104:delay=10 --class 5105:delay=10 --class 5106:delay=50 --class 5107:delay=5 \
      > "$WORK/tapnetem.out" 2> "$WORK/tapnetem.err" &
  RELAY_PID=$!
  for _ in $(seq 50); do grep -q READY "$WORK/tapnetem.out" 2>/dev/null && break; sleep 0.1; done
  grep -q READY "$WORK/tapnetem.out" || die "tapnetem failed: $(cat "$WORK/tapnetem.err")"
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1 \
      || die "sysctl failed"
  done
}

cap() { # name snaplen filter: tcpdump in the client namespace, sets CAP_PID
  ip netns exec "$NS_A" timeout -s INT 60 tcpdump -n -i "$TAP_A" -s "$2" -B 32768 --immediate-mode -U \
      -w "$NEW/$1.pcap" "$3" 2> "$WORK/$1.tcpdump.log" &
  CAP_PID=$!
  for _ in $(seq 50); do grep -q "listening on" "$WORK/$1.tcpdump.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$WORK/$1.tcpdump.log" || die "tcpdump did not start: $(cat "$WORK/$1.tcpdump.log")"
  sleep 0.5
}
stopcap() { sleep 1; kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID"; }

sink() { # port rcvbuf: tcpgen sink for one connection, reading as fast as it can
  server "$WORK/sink.log" 40 "$PY" "$TOOLS/tcpgen.py" sink --bind $B4 --port "$1" --rcvbuf "$2" \
      --chunk 65536 --max-conns 1 --max-seconds 30
}
send() { # port bytes
  client 30 "$PY" "$TOOLS/tcpgen.py" send --to $B4 --port "$1" --bytes "$2" --cc cubic --max-seconds 20
}

rec_slow_rwnd() {
  sink 5101 16384
  cap slow_rwnd 128 "tcp port 5101"
  send 5101 800000
  stopcap slow_rwnd; server_down
}

rec_slow_bandwidth() {
  sink 5102 4194304
  ina tc qdisc add dev "$TAP_A" root tbf rate 8mbit burst 3000 limit 300000 || die "tc tbf failed"
  cap slow_bandwidth 128 "tcp port 5102"
  send 5102 1500000
  stopcap slow_bandwidth; server_down
  ina tc qdisc del dev "$TAP_A" root
}

rec_slow_loss() {
  sink 5103 4194304
  cap slow_loss 128 "tcp port 5103"
  send 5103 1500000
  stopcap slow_loss; server_down
}

rec_slow_app() {
  sink 5104 0
  cap slow_app 0 "tcp port 5104"
  client 20 "$PY" "$HERE/slowgen.py" paced --to $B4 --port 5104 --chunk 1000 --every-ms 30 --count 80
  stopcap slow_app; server_down
}

rec_slow_rto() {
  sink 5105 4194304
  ina tc qdisc add dev "$TAP_A" root tbf rate 8mbit burst 3000 limit 300000 || die "tc tbf failed"
  cap slow_rto 128 "tcp port 5105"
  ip netns exec "$NS_A" timeout 30 "$PY" "$TOOLS/tcpgen.py" send --to $B4 --port 5105 --bytes 1200000 \
      --cc cubic --max-seconds 25 >> "$WORK/clients.log" 2>&1 &
  local sp=$!
  sleep 0.5
  # blackout of the return path: a token bucket smaller than any frame drops every one
  inb tc qdisc add dev "$TAP_B" root tbf rate 8bit burst 10 limit 1 || die "tc tbf (blackout) failed"
  sleep 4
  inb tc qdisc del dev "$TAP_B" root
  wait $sp
  tail -n 1 "$WORK/clients.log"
  stopcap slow_rto; server_down
  ina tc qdisc del dev "$TAP_A" root
}

rec_slow_latency() {
  server "$WORK/rr.log" 40 "$PY" "$HERE/slowgen.py" rrserver --bind $B4 --port 5106 --max-seconds 30
  cap slow_latency 0 "tcp port 5106"
  client 30 "$PY" "$HERE/slowgen.py" rrclient --to $B4 --port 5106 --conns 20 --requests 1 --size 3000
  stopcap slow_latency; server_down
}

rec_slow_server() {
  server "$WORK/rr.log" 40 "$PY" "$HERE/slowgen.py" rrserver --bind $B4 --port 5107 --think-ms 400 --max-seconds 30
  cap slow_server 0 "tcp port 5107"
  client 30 "$PY" "$HERE/slowgen.py" rrclient --to $B4 --port 5107 --conns 1 --requests 5 --size 20000
  stopcap slow_server; server_down
}

bed_up
for n in "${CAPTURES[@]}"; do echo "recording $n"; "rec_$n"; done
kill "$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null; RELAY_PID=
echo "relay counters: $(cat "$WORK/tapnetem.err")"

for n in "${CAPTURES[@]}"; do [ -s "$NEW/$n.pcap" ] || die "$n.pcap missing or empty"; done
if command -v tshark >/dev/null; then
  args=(); for n in "${CAPTURES[@]}"; do args+=("$n.pcap"); done
  bash "$TOOLS/tshark_oracle.sh" "$NEW" "${args[@]}" & wait $! || die "tshark oracle failed"
  awk -F'\t' '$2!=0 {bad=1; print "tshark exit " $2 " on " $1 > "/dev/stderr"} END {exit bad}' \
      "$NEW/tshark_oracle_status.tsv" || die "tshark stopped early on a capture"
  rm -f "$NEW/tshark_oracle_status.tsv"
else
  echo "make_slow_samples: WARNING: tshark not installed, no oracle (*.tshark.tsv) written" >&2
fi

for n in "${CAPTURES[@]}"; do rm -f "$OUT/$n.pcap" "$OUT/$n.pcap.tshark.tsv"; done
chown --reference="$OUT" "$NEW"/*
chmod 644 "$NEW"/*
mv "$NEW"/* "$OUT"/
OK=1
ls -l "${CAPTURES[@]/#/$OUT/}" 2>/dev/null || ls -l "$OUT"/slow_*.pcap
