#!/bin/bash
# make_real.sh — record the real-kernel captures of tests/data/real (see SOURCES.md there).
#
#   sudo bash tests/data/real/make_real.sh [OUTDIR]      (default: the directory of this script)
#
# Needs root, iproute2, tcpdump, python3 (standard library only), coreutils `timeout`, and tshark
# for the oracle files. About 25 s; the whole run is bounded to 120 s. NS_A, NS_B, TAP_A, TAP_B
# name the namespaces and TAP devices it creates and deletes (defaults below).
#
# Test bed: two network namespaces, client NS_A (10.200.0.1, fd00:200::1) and server NS_B
# (10.200.0.2, fd00:200::2), joined by `reusebed.py relay`: a TAP device in each namespace and a
# process copying frames between them, which forges or drops one segment per connection on the
# ports below. Both ends are the kernel's own TCP (`reusebed.py serve` / `connect`).
#
#   inject_before_synack.pcap  (captured on the client's TAP) ports 7101-7103: before the
#                              server's SYN/ACK reaches the client, the relay sends it a forged
#                              RST (7101), RST/ACK (7102) or data segment (7103) from the
#                              server's address; IPv4 and IPv6.
#   synack_new_isn.pcap        (captured on the server's TAP) ports 7104-7105: the relay drops
#                              the server's first SYN/ACK; on 7104 the server restarts its
#                              listener before the client's SYN is retransmitted, so the second
#                              SYN/ACK has a new ISN; on 7105 it does not (same ISN again).
#   tcp_fast_open.pcap         (captured on the server's TAP) ports 7110 and 7112: TCP Fast Open
#                              (net.ipv4.tcp_fastopen=3 in both namespaces); the first connection
#                              asks for a cookie, the next ones carry the request on the SYN. On
#                              7112 the relay drops the first SYN/ACK. tcp_fast_open_client.pcap
#                              is the same traffic captured on the client's TAP.
#   syn_new_isn.pcap           (captured on the client's TAP) port 7120: the client connects twice
#                              from one source port: after an abortive close (RST), and after a
#                              normal close that leaves it in TIME_WAIT (net.ipv4.tcp_tw_reuse=1):
#                              each second SYN has a new ISN on a known 4-tuple.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$(mkdir -p "${1:-$HERE}" && cd "${1:-$HERE}" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
NS_A=${NS_A:-tcpa_real_c} NS_B=${NS_B:-tcpa_real_s}
TAP_A=${TAP_A:-tcpa_rc} TAP_B=${TAP_B:-tcpa_rs}
A4=10.200.0.1 B4=10.200.0.2 A6=fd00:200::1 B6=fd00:200::2
PY=${PYTHON:-python3}
BED="$PY $HERE/reusebed.py"
export PYTHONDONTWRITEBYTECODE=1

die() { echo "make_real: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, TAP devices, tcpdump)"
for c in ip tcpdump timeout tshark "$PY"; do command -v "$c" >/dev/null || die "missing $c"; done

if [ -z "${MAKE_REAL_INNER:-}" ]; then
  MAKE_REAL_INNER=1 exec timeout -s TERM 120 bash "${BASH_SOURCE[0]}" "$@"
fi

WORK=$(mktemp -d /tmp/make_real.XXXXXX)
RELAY_PID= OK=0
. "$ROOT/samples/tools/cleanup.sh"
bed_traps make_real

ina() { ip netns exec "$NS_A" "$@"; }
inb() { ip netns exec "$NS_B" "$@"; }
ready() { for _ in $(seq 50); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; die "no '$2' in $1"; }

ip netns add "$NS_A" && ip netns add "$NS_B" || die "cannot create namespaces $NS_A $NS_B"
$BED relay --ns-a "$NS_A" --ns-b "$NS_B" --tap-a "$TAP_A" --tap-b "$TAP_B" --max-seconds 110 \
    --inject-rst 7101 --inject-rstack 7102 --inject-data 7103 --drop-synack 7104 --drop-synack 7105 \
    --drop-synack 7112 \
    > "$WORK/relay.out" 2> "$WORK/relay.err" &
RELAY_PID=$!
ready "$WORK/relay.out" READY
for ns in "$NS_A" "$NS_B"; do
  ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_fastopen=3 net.ipv4.ip_local_port_range="20000 40000" \
      net.ipv4.tcp_tw_reuse=1
done

inb $BED serve --bind "$B4" --bind "$B6" --port 7101 --port 7102 --port 7103 --port 7104 --port 7105 \
    --port 7110 --port 7112 --port 7120 --fastopen --max-seconds 100 > "$WORK/serve.out" 2>&1 &
ready "$WORK/serve.out" READY
SERVE_PID=$(awk '/^READY/ {print $2; exit}' "$WORK/serve.out")   # the server itself, not `ip netns exec`

CAP_PIDS=()
cap_start() {  # namespace tap file filter
  ip netns exec "$1" tcpdump -i "$2" --immediate-mode -U -s 0 -w "$WORK/$3" "$4" 2> "$WORK/$3.log" &
  CAP_PIDS+=($!)
  ready "$WORK/$3.log" listening
  sleep 0.2
}
cap_stop() {  # files
  sleep 0.5
  kill -INT "${CAP_PIDS[@]}"; wait "${CAP_PIDS[@]}"; CAP_PIDS=()
  for f in "$@"; do echo "$f: $(grep captured "$WORK/$f.log")"; done
}
client() { ina timeout 10 $BED connect "$@" >> "$WORK/client.out" 2>&1; }
drops() { grep -c '^dropped' "$WORK/relay.out"; }
restarted() {  # client arguments: once the relay dropped the SYN/ACK, the server restarts
  local n cl
  n=$(drops)
  client "$@" &
  cl=$!
  for _ in $(seq 100); do [ "$(drops)" -gt "$n" ] && break; sleep 0.02; done
  [ "$(drops)" -gt "$n" ] || die "the relay dropped no SYN/ACK"
  kill -USR1 "$SERVE_PID"
  wait "$cl"
}

# 1. forged segments before the SYN/ACK
cap_start "$NS_A" "$TAP_A" inject_before_synack.pcap "tcp portrange 7101-7103"
for port in 7101 7102 7103; do
  client --to "$B4" --port "$port" --size 300
  client --to "$B6" --port "$port" --size 1200
done
cap_stop inject_before_synack.pcap

# 2. the first SYN/ACK lost; a restarted listener answers the retransmitted SYN with a new ISN
cap_start "$NS_B" "$TAP_B" synack_new_isn.pcap "tcp portrange 7104-7105"
restarted --to "$B4" --port 7104 --size 500
restarted --to "$B6" --port 7104 --size 500
client --to "$B4" --port 7105 --size 500
client --to "$B6" --port 7105 --size 500
cap_stop synack_new_isn.pcap

# 3. TCP Fast Open: cookie request, then data on the SYN; then with the first SYN/ACK lost
cap_start "$NS_B" "$TAP_B" tcp_fast_open.pcap "tcp port 7110 or tcp port 7112"
cap_start "$NS_A" "$TAP_A" tcp_fast_open_client.pcap "tcp port 7110 or tcp port 7112"
client --to "$B4" --port 7110 --fastopen --count 3 --size 400
client --to "$B6" --port 7110 --fastopen --count 3 --size 2000
client --to "$B4" --port 7112 --fastopen --size 700
client --to "$B6" --port 7112 --fastopen --size 700
cap_stop tcp_fast_open.pcap tcp_fast_open_client.pcap

# 4. a new SYN with a new ISN on a known 4-tuple: after a RST, and from TIME_WAIT
cap_start "$NS_A" "$TAP_A" syn_new_isn.pcap "tcp port 7120"
client --to "$B4" --port 7120 --sport 45000 --count 2 --abort --size 300
client --to "$B6" --port 7120 --sport 45000 --count 2 --abort --size 300
client --to "$B4" --port 7120 --sport 45001 --count 2 --gap 1.2 --size 300
cap_stop syn_new_isn.pcap

cat "$WORK/client.out"
grep -c restarted "$WORK/serve.out" | grep -qx 2 || die "the server did not restart twice"
grep -q "timed out\|refused\|Errno" "$WORK/client.out" && die "a client failed (see $WORK/client.out)"

CAPS=(inject_before_synack.pcap synack_new_isn.pcap tcp_fast_open.pcap tcp_fast_open_client.pcap syn_new_isn.pcap)
bash "$ROOT/samples/tools/tshark_oracle.sh" "$WORK" "${CAPS[@]}" >/dev/null
# each capture must show what it was recorded for: SYN/ACKs and SYNs flagged reused_ports, data on SYNs
"$PY" - "$WORK" <<'CHECK' || die "a capture lacks what it was recorded for"
import csv, sys
want = {"inject_before_synack.pcap": (6, 0, 0), "synack_new_isn.pcap": (2, 0, 0), "syn_new_isn.pcap": (0, 3, 0),
        "tcp_fast_open.pcap": (0, 0, 4), "tcp_fast_open_client.pcap": (0, 0, 4)}
ok = True
for name, (synack, syn, tfo) in want.items():
    rows = list(csv.DictReader(open(f"{sys.argv[1]}/{name}.tshark.tsv"), delimiter="\t"))
    kind = [int(r["tcp.flags"], 16) & 0x12 for r in rows]
    got = (sum(1 for r, k in zip(rows, kind) if r["tcp.analysis.reused_ports"] and k == 0x12),
           sum(1 for r, k in zip(rows, kind) if r["tcp.analysis.reused_ports"] and k == 0x02),
           sum(1 for r, k in zip(rows, kind) if k == 0x02 and int(r["tcp.len"]) > 0))
    print(f"{name}: reused_ports on SYN/ACK {got[0]}, on SYN {got[1]}; SYNs with data {got[2]}")
    ok &= got[:2] == (synack, syn) and got[2] >= tfo
sys.exit(0 if ok else 1)
CHECK
for f in "${CAPS[@]}"; do cp "$WORK/$f" "$WORK/$f.tshark.tsv" "$OUT/"; done
cp "$WORK/TSHARK_VERSION.txt" "$OUT/"
kill "$RELAY_PID"; wait "$RELAY_PID"; RELAY_PID=
cat "$WORK/relay.err"
OK=1
