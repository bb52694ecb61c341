#!/bin/bash
# make_big_capture.sh — record a large capture of real kernel TCP for the throughput and memory
# benchmark (bench/table.py): many short HTTP-like connections opened and closed within a short
# time, keep-alive connections, refused connects and several lossy bulk uploads.
#
#   sudo bash bench/make_big_capture.sh [--scale K [--from FILE | --direct]] [--seconds S] [--conns N]
#                                       [--bulk B] [--out FILE]
#
#   --scale K    K times the connections (short, keep-alive, refused) in the same time span;
#                the bulk uploads stay the same (default 1).  Made from one recording at the
#                scale-1 rate: K copies of it merged by time, copy k with its client addresses'
#                last byte raised by k (checksums adjusted) and shifted by k/K s
#                (bench/replicate_pcap.py).  Every connection keeps its recorded packets and
#                timing; two shared cores cannot run the Python clients and servers at K times
#                the rate.
#   --from FILE  with --scale K: copy this earlier scale-1 recording instead of recording one
#   --direct     with --scale K: one recording at K times the connection rate instead
#   --seconds S  length of the traffic (default 95)
#   --conns N    HTTP-like connections at scale 1 (default 64000)
#   --bulk B     number of lossy bulk uploads (default 6)
#   --out FILE   output (default /work/big21/big.pcap, or big4x.pcap for --scale 4)
#   --client I   the client's veth address is 10.201.0.(10+I) / fd00:201::(10+I) (default 0)
#
# Defaults give about 2M packets with about 64k connections in about 95 s.  Needs root, iproute2,
# tcpdump, timeout, python3 (standard library only); capinfos (Wireshark) for the summary if
# present.  A recording is bounded by timeout(1) (S + 150 s); every client and server runs under
# its own timeout.
#
# Test bed: two network namespaces joined twice.  (1) samples/tools/tapnetem.py, a user-space
# stand-in for `tc netem` (this kernel has no sch_netem): a TAP device in each namespace
# (10.200.0.1 client, 10.200.0.2 server), frames relayed with per-port loss / delay / reordering;
# it carries the bulk uploads.  (2) a veth pair (10.201.0.10 / fd00:201::10 client, 10.201.0.2 /
# fd00:201::2 servers; GSO limited to one segment, so the capture holds MTU-sized segments as on
# a physical link) for the HTTP-like traffic and the refused connects: kernel to kernel, so the
# relay (one Python process) does not set the pace of tens of thousands of connections.
# Addresses exist only inside the namespaces; no traffic leaves them.  tcpdump records each
# client-side device (full snap length, 256 MB kernel buffer); the two files are merged by time
# (bench/merge_pcap.py).  Client checksums are the kernel's offloaded ones (left unfinished on
# veth), as in any capture taken on the sending host.
#
# Traffic:
#   8080-8083  HTTP-like request/response (samples/tools/tcpgen.py httpd, one process per port,
#              and httpc), no added delay; one wave of N/S connections started every second
#              (one client process per 1000), 64 at a time per process: 10% IPv6; 8% keep-alive
#              (2-8 requests); of the last responses 62% server-first close, 30% client-first
#              close, 8% server abort (RST); responses mostly a few KB, 1% of 100-500 KB
#   7          closed port: refused connects (SYN -> RST/ACK), 1 per 100 connections
#   5001       B bulk uploads (CUBIC) for the whole span through the relay: 0.5% loss, 1% reordered,
#              5 ms one way
#
# Not bit-reproducible (ISNs, ports, timing).  The file is written next to FILE as FILE.part and
# renamed when the run succeeded; FILE.txt gets the recording log (relay and tcpdump counters,
# client statistics, capinfos summary).  Namespaces bigcap_a / bigcap_b (NS_A / NS_B to
# override), TAP devices bigta / bigtb (TAP_A / TAP_B), veth bigva / bigvb (VETH_A / VETH_B).
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$HERE/../samples/tools
PY=${PYTHON:-python3}
NS_A=${NS_A:-bigcap_a} NS_B=${NS_B:-bigcap_b}
TAP_A=${TAP_A:-bigta} TAP_B=${TAP_B:-bigtb}
VETH_A=${VETH_A:-bigva} VETH_B=${VETH_B:-bigvb}
A4=10.200.0.1 B4=10.200.0.2            # TAP relay (lossy bulk uploads)
HB4=10.201.0.2 HB6=fd00:201::2                                  # veth (HTTP-like, refused)
export PYTHONDONTWRITEBYTECODE=1

SCALE=1 SECONDS_=95 CONNS=64000 BULK=6 OUTFILE= DIRECT=0 CLIENT=0 FROM=
while [ $# -gt 0 ]; do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --direct) DIRECT=1; shift ;;
    --from) FROM=$2; shift 2 ;;
    --client) CLIENT=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --bulk) BULK=$2; shift 2 ;;
    --out) OUTFILE=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make_big_capture: unknown argument $1" >&2; exit 2 ;;
  esac
done
for v in "$SCALE" "$SECONDS_" "$CONNS" "$BULK" "$CLIENT"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "make_big_capture: not a whole number: $v" >&2; exit 2; }
done
HA4=10.201.0.$((10 + CLIENT)) HA6=fd00:201::$((10 + CLIENT))    # client address (--client I: .10 + I)
if [ -z "$OUTFILE" ]; then
  if [ "$SCALE" = 1 ]; then OUTFILE=/work/big21/big.pcap; else OUTFILE=/work/big21/big${SCALE}x.pcap; fi
fi

die() { echo "make_big_capture: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, TAP devices, tcpdump)"
for c in ip tcpdump timeout "$PY"; do command -v "$c" >/dev/null || die "missing $c"; done

# --scale K (K > 1) without --direct: one recording at the scale-1 rate (or --from FILE, an
# earlier one), then K copies of it merged by time, copy k with the client addresses' last byte
# raised by k and shifted by k/K s (bench/replicate_pcap.py); the bulk uploads are kept once.
if [ "$SCALE" -gt 1 ] && [ "$DIRECT" = 0 ]; then
  [ "$CLIENT" = 0 ] || die "--client is for scale-1 recordings"
  mkdir -p "$(dirname "$OUTFILE")" || die "cannot create $(dirname "$OUTFILE")"
  SRC=$FROM
  if [ -z "$SRC" ]; then
    SRC=$OUTFILE.rec.pcap
    bash "${BASH_SOURCE[0]}" --scale 1 --seconds "$SECONDS_" --conns "$CONNS" --bulk "$BULK" --out "$SRC" \
      || die "the recording failed"
  fi
  [ -f "$SRC" ] || die "no such recording: $SRC"
  timeout 1800 "$PY" "$HERE/replicate_pcap.py" "$OUTFILE.part" "$SRC" --copies "$SCALE" \
      --client 10.201.0.10 --client fd00:201::10 --once-port 5001 || die "replicate failed"
  { echo "make_big_capture: --scale $SCALE: $SCALE copies of $SRC (client 10.201.0.10 / fd00:201::10" \
         "as .10 ... .$((10 + SCALE - 1)), copy k shifted by k/$SCALE s, port 5001 once)"
    [ -f "$SRC.txt" ] && cat "$SRC.txt"; } > "$OUTFILE.txt"
  if command -v capinfos >/dev/null; then capinfos -c -d -u -M "$OUTFILE.part" | tee -a "$OUTFILE.txt"; fi
  [ -z "$FROM" ] && rm -f "$SRC" "$SRC.txt"
  mv "$OUTFILE.part" "$OUTFILE" && ls -l "$OUTFILE"
  exit
fi

# Bound the whole run: re-exec under timeout(1) once; on SIGTERM the EXIT trap cleans up.
if [ -z "${MAKE_BIG_INNER:-}" ]; then
  MAKE_BIG_INNER=1 exec timeout -s TERM $((SECONDS_ + 150)) bash "${BASH_SOURCE[0]}" \
    --scale "$SCALE" --seconds "$SECONDS_" --conns "$CONNS" --bulk "$BULK" --client "$CLIENT" --out "$OUTFILE" \
    $([ "$DIRECT" = 1 ] && echo --direct)
fi

# NICE=-10: the recording's processes (relay, servers, clients, tcpdump) run at that priority.
# On a loaded machine a starved server lets its accept queue overflow, the clients' SYNs are
# retransmitted after 1 s and the waves fall behind (the summary warns).
if [ "${NICE:-0}" != 0 ]; then renice -n "$NICE" -p $$ > /dev/null || die "renice $NICE failed"; fi
mkdir -p "$(dirname "$OUTFILE")" || die "cannot create $(dirname "$OUTFILE")"
PART=$OUTFILE.part
WORK=$(mktemp -d /tmp/make_big_capture.XXXXXX)
REC=$WORK/recording.txt
RELAY_PID=
OK=0
. "$TOOLS/cleanup.sh"
bed_traps make_big_capture

log() { echo "$*" | tee -a "$REC"; }

# ---------------------------------------------------------------------------- test bed
ip netns del "$NS_A" 2>/dev/null; ip netns del "$NS_B" 2>/dev/null
ip netns add "$NS_A" && ip netns add "$NS_B" || die "ip netns add failed"
"$PY" "$TOOLS/tapnetem.py" --ns-a "$NS_A" --ns-b "$NS_B" --tap-a "$TAP_A" --tap-b "$TAP_B" \
    --delay-ms 1 --seed 21 --max-seconds $((SECONDS_ + 120)) \
    --class 5001:loss=0.005,reorder=0.01,delay=5 \
    > "$WORK/tapnetem.out" 2> "$WORK/tapnetem.err" &
RELAY_PID=$!
for _ in $(seq 50); do grep -q READY "$WORK/tapnetem.out" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$WORK/tapnetem.out" || die "tapnetem failed: $(cat "$WORK/tapnetem.err")"
# the HTTP-like traffic takes a veth pair: kernel to kernel, so the relay (one Python process)
# does not set the pace of tens of thousands of connections.  gso_max_segs 1: the stack builds
# MTU-sized segments (no 64 KB GSO super-segments in the capture), as on a physical link.
ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B" || die "ip link add veth failed"
for x in "$NS_A $VETH_A $HA4 $HA6" "$NS_B $VETH_B $HB4 $HB6"; do
  set -- $x
  ip -n "$1" link set "$2" gso_max_segs 1 gso_max_size 1514 || die "cannot limit GSO on $2"
  ip -n "$1" addr add "$3/24" dev "$2" && ip -n "$1" addr add "$4/64" dev "$2" nodad \
    && ip -n "$1" link set "$2" up || die "veth setup failed"
done
for ns in "$NS_A" "$NS_B"; do
  # many connections from one client address: wide port range, TIME_WAIT reuse, deep accept queue
  ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1 \
      net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096 || die "sysctl failed"
done

wait_ready() { # logfile
  for _ in $(seq 100); do grep -q READY "$1" 2>/dev/null && return 0; sleep 0.1; done
  die "server did not start: $(cat "$1")"
}

# ---------------------------------------------------------------------------- servers
for port in 8080 8081 8082 8083; do   # one server process per port: they spread over the cores
  ip netns exec "$NS_B" timeout $((SECONDS_ + 90)) "$PY" "$TOOLS/tcpgen.py" httpd --bind $HB4 --bind $HB6 \
      --port $port --max-seconds $((SECONDS_ + 80)) > "$WORK/httpd$port.log" 2>&1 &
  wait_ready "$WORK/httpd$port.log"
done
if [ "$BULK" -gt 0 ]; then
  ip netns exec "$NS_B" timeout $((SECONDS_ + 90)) "$PY" "$TOOLS/tcpgen.py" sink --bind $B4 --port 5001 \
      --max-conns "$BULK" --max-seconds $((SECONDS_ + 80)) > "$WORK/sink.log" 2>&1 &
  wait_ready "$WORK/sink.log"
fi

# ---------------------------------------------------------------------------- capture
# one tcpdump per client-side device; the two files are merged by time at the end
CAP_PIDS=()
for dev in "$TAP_A" "$VETH_A"; do
  ip netns exec "$NS_A" timeout -s INT $((SECONDS_ + 100)) tcpdump -n -i "$dev" -s 0 -B 262144 \
      -w "$WORK/$dev.pcap" tcp 2> "$WORK/tcpdump.$dev.log" &
  CAP_PIDS+=($!)
  for _ in $(seq 50); do grep -q "listening on" "$WORK/tcpdump.$dev.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$WORK/tcpdump.$dev.log" || die "tcpdump did not start: $(cat "$WORK/tcpdump.$dev.log")"
done
sleep 0.5

# ---------------------------------------------------------------------------- traffic
T0=$(date +%s.%N)
log "make_big_capture: scale=$SCALE seconds=$SECONDS_ conns=$((CONNS * SCALE)) bulk=$BULK -> $OUTFILE"
CPIDS=()
for i in $(seq "$BULK"); do   # staggered starts, all end at the end of the span
  ip netns exec "$NS_A" timeout $((SECONDS_ + 30)) "$PY" "$TOOLS/tcpgen.py" send --to $B4 --port 5001 \
      --bytes 20000000000 --cc cubic --max-seconds $((SECONDS_ - i)) >> "$WORK/clients.log" 2>&1 &
  CPIDS+=($!)
done
PER=$(( (CONNS * SCALE + SECONDS_ - 1) / SECONDS_ ))   # connections per wave (one wave a second)
LANES=$(( (PER + 999) / 1000 ))                        # client processes per wave
REFUSED=$(( PER / 100 / LANES ))
for w in $(seq 0 $((SECONDS_ - 1))); do
  for l in $(seq "$LANES"); do
    ip netns exec "$NS_A" timeout 60 "$PY" "$TOOLS/tcpgen.py" httpc --to $HB4 --to $HB6 \
        --port 8080 --port 8081 --port 8082 --port 8083 --conns $((PER / LANES)) --concurrency 64 \
        --seed $((w * 16 + l)) --v6-frac 0.1 --keepalive-frac 0.08 --max-requests 8 \
        --client-close-frac 0.3 --abort-frac 0.08 --refused "$REFUSED" --refused-port 7 \
        --max-seconds 45 >> "$WORK/clients.log" 2>&1 &
    CPIDS+=($!)
  done
  # next wave at T0 + w + 1
  now=$(date +%s.%N)
  d=$(echo "$T0 + $w + 1 - $now" | bc -l 2>/dev/null || echo 1)
  case $d in -*|'') ;; *) sleep "$d" ;; esac
done
# a few connections can hang in a 20 s client read timeout: give the clients 5 s after the span,
# then stop the stragglers so the capture ends with the traffic
for _ in $(seq 50); do
  left=0; for p in "${CPIDS[@]}"; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
  [ $left = 0 ] && break; sleep 0.1
done
[ $left = 0 ] || log "stopping $left client processes still running 5 s after the span"
for p in "${CPIDS[@]}"; do kill "$p" 2>/dev/null; done
for p in "${CPIDS[@]}"; do wait "$p"; done
T1=$(date +%s.%N)
sleep 2
for p in "${CAP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
for p in "${CAP_PIDS[@]}"; do wait "$p"; done

# ---------------------------------------------------------------------------- summary
log "traffic took $(echo "$T1 - $T0" | bc -l | cut -c1-6) s"
for dev in "$TAP_A" "$VETH_A"; do
  log "tcpdump $dev: $(grep -E 'captured|received by filter|dropped by kernel' "$WORK/tcpdump.$dev.log" | tr '\n' ' ')"
done
kill "$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null; RELAY_PID=
log "relay: $(cat "$WORK/tapnetem.err")"
log "clients: $(grep -c '^httpc:' "$WORK/clients.log") httpc runs; summed:"
"$PY" - "$WORK/clients.log" $(( PER / LANES * LANES * SECONDS_ + REFUSED * LANES * SECONDS_ )) <<'EOF' | tee -a "$REC"
import ast, sys, collections
tot = collections.Counter()
for line in open(sys.argv[1]):
    if line.startswith('httpc: '):
        tot.update(ast.literal_eval(line[7:].strip()))
print('  ', dict(tot))
made = tot['ok'] + tot['connect_fail'] + sum(v for k, v in tot.items() if k.startswith('err_'))
want = int(sys.argv[2])
if made < 0.9 * want:
    print(f'WARNING: the clients made {made} of {want} connections (a loaded machine: the waves fell behind)')
EOF
grep -v '^httpc:' "$WORK/clients.log" | sort | uniq -c | sed 's/^/  /' | tee -a "$REC"
dropped=$(cat "$WORK"/tcpdump.*.log | grep -Eo '[0-9]+ packets dropped by kernel' | awk '{n+=$1} END{print n+0}')
[ "$dropped" = 0 ] || log "WARNING: tcpdump dropped $dropped packets"
"$PY" "$HERE/merge_pcap.py" "$PART" "$WORK/$TAP_A.pcap" "$WORK/$VETH_A.pcap" 2> "$WORK/merge.log" \
  || die "merge failed: $(cat "$WORK/merge.log")"
npk=$(grep -Eo '[0-9]+ packets merged' "$WORK/merge.log" | cut -d' ' -f1)
log "merged: $npk packets"
[ "$SCALE" = 1 ] && [ "${npk:-0}" -lt 2000000 ] && [ "$CONNS" -ge 64000 ] \
  && log "WARNING: fewer than 2M packets (a loaded machine ran fewer connections or slower uploads)"
rm -f "$WORK/$TAP_A.pcap" "$WORK/$VETH_A.pcap"
if command -v capinfos >/dev/null; then capinfos -c -d -u -M "$PART" | tee -a "$REC"; fi
mv "$PART" "$OUTFILE" && cp "$REC" "$OUTFILE.txt" && OK=1
ls -l "$OUTFILE"
