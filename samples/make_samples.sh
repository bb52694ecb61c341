#!/bin/bash
# make_samples.sh — record tcpanalyze's real-kernel sample captures into samples/.
#
#   sudo bash samples/make_samples.sh [OUTDIR]        (default: the directory of this script)
#
# Needs root, iproute2, tcpdump, python3 (standard library only), coreutils `timeout`; tshark for
# the oracle files and the checks (skipped with a warning when missing). Takes about 1.5 minutes;
# the whole run is bounded to 290 s. ONLY="name ..." re-records just those captures.
#
# Test bed: two network namespaces (client $NS_A, server $NS_B) joined by tools/tapnetem.py, a
# user-space stand-in for `tc netem` (this kernel has no sch_netem): a TAP device in each
# namespace and a relay applying per-port loss / delay / reordering. Addresses exist only inside
# the namespaces (10.200.0.1 / fd00:200::1 client, 10.200.0.2 / fd00:200::2 server): no traffic
# leaves them. Every capture is taken with tcpdump on the client's TAP device
# (--immediate-mode -U). Segments are MTU sized (no GSO on a TAP device).
#
# Not bit-reproducible (ISNs, ports, timing); the counts vary a little from run to run. The files
# are first written to a scratch directory and only moved into OUTDIR when every step succeeded.
# Writes OUTDIR/RECORDING.txt: the socket counts observed with `ss` while recording and a
# tshark summary of each capture. See SOURCES.md.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$(mkdir -p "${1:-$HERE}" && cd "${1:-$HERE}" && pwd)
TOOLS=$HERE/tools
NS_A=${NS_A:-tcpa_cli} NS_B=${NS_B:-tcpa_srv}    # namespaces created (and deleted) by this script
TAP_A=${TAP_A:-tcpa_c} TAP_B=${TAP_B:-tcpa_s}      # their TAP devices (at most 15 characters)
A4=10.200.0.1 B4=10.200.0.2 A6=fd00:200::1 B6=fd00:200::2
PY=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1

CAPTURES=(timewait_server_close slow_reader_zero_window window_shrink rst_refused_aborted
          lossy_bulk close_wait keepalive handshake_variety http_small reordered_upload)
# ONLY="name ..." records just those captures (RECORDING.txt is then left alone)
if [ -n "${ONLY:-}" ]; then
  for n in $ONLY; do [[ " ${CAPTURES[*]} " == *" $n "* ]] || { echo "make_samples: unknown capture $n" >&2; exit 2; }; done
  read -r -a CAPTURES <<< "$ONLY"
fi

die() { echo "make_samples: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, TAP devices, tcpdump)"
for c in ip tcpdump timeout "$PY"; do command -v "$c" >/dev/null || die "missing $c"; done

# Bound the whole run: re-exec under timeout(1) once; on SIGTERM the EXIT trap cleans up.
if [ -z "${MAKE_SAMPLES_INNER:-}" ]; then
  MAKE_SAMPLES_INNER=1 exec timeout -s TERM 290 bash "${BASH_SOURCE[0]}" "$@"
fi

WORK=$(mktemp -d /tmp/make_samples.XXXXXX)
NEW=$WORK/out; mkdir -p "$NEW"
REC=$NEW/RECORDING.txt
RELAY_PID=
OK=0

. "$TOOLS/cleanup.sh"
bed_traps make_samples

log() { echo "$*" | tee -a "$REC"; }
ina() { ip netns exec "$NS_A" "$@"; }
inb() { ip netns exec "$NS_B" "$@"; }
# Long-running commands are started in the background and waited for: bash runs a trap only after
# the foreground command ends, but `wait` returns at once on a signal. (Background processes that
# must be signalled are started with `ip netns exec` directly, never through a function: a
# backgrounded function is a subshell, which ignores SIGINT.)
client() { # SECONDS CMD...: run a client in the client namespace, bounded; log it, show its last line
  ip netns exec "$NS_A" timeout "$@" >> "$WORK/clients.log" 2>&1 &
  wait $!
  local rc=$?
  tail -n 1 "$WORK/clients.log"
  return $rc
}

# ---------------------------------------------------------------------------- test bed
bed_up() {
  ip netns del "$NS_A" 2>/dev/null; ip netns del "$NS_B" 2>/dev/null
  ip netns add "$NS_A" && ip netns add "$NS_B" || die "ip netns add failed"
  # Port classes (client ports are kept >= 10000 so they never match a class):
  #   5001 lossy bulk  2% loss, 5% reordered, 20 ms one way   | 5002, 5003 slow readers, 5 ms
  #   5004 reordered upload  5% reordered, 20 ms one way      |
  #   7020 simultaneous close, 20 ms one way                   | 9 SYNs dropped (loss 1.0)
  #   everything else (8080 HTTP-like, 7000 scenarios, 80 http_small, 7 closed): 2 ms one way
  "$PY" "$TOOLS/tapnetem.py" --ns-a "$NS_A" --ns-b "$NS_B" --tap-a "$TAP_A" --tap-b "$TAP_B" \
      --delay-ms 2 --seed 1 --max-seconds 280 \
      --class 5001:loss=0.02,reorder=0.05,delay=20 --class 5002:delay=5 --class 5003:delay=5 \
      --class 5004:reorder=0.05,delay=20 \
      --class 7020:delay=20 --class 9:loss=1.0 \
      > "$WORK/tapnetem.out" 2> "$WORK/tapnetem.err" &
  RELAY_PID=$!
  for _ in $(seq 50); do grep -q READY "$WORK/tapnetem.out" 2>/dev/null && break; sleep 0.1; done
  grep -q READY "$WORK/tapnetem.out" || die "tapnetem failed: $(cat "$WORK/tapnetem.err")"
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1 \
      || die "sysctl failed"
  done
}

wait_ready() { # logfile: until a server printed READY
  for _ in $(seq 100); do grep -q READY "$1" 2>/dev/null && return 0; sleep 0.1; done
  die "server did not start: $(cat "$1")"
}

cap() { # name snaplen filter -> starts tcpdump in the client namespace, sets CAP_PID
  ip netns exec "$NS_A" timeout -s INT 120 tcpdump -n -i "$TAP_A" -s "$2" -B 32768 --immediate-mode -U \
      -w "$NEW/$1.pcap" "$3" 2> "$WORK/$1.tcpdump.log" &
  CAP_PID=$!
  for _ in $(seq 50); do grep -q "listening on" "$WORK/$1.tcpdump.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$WORK/$1.tcpdump.log" || die "tcpdump did not start: $(cat "$WORK/$1.tcpdump.log")"
  sleep 0.5
}
stopcap() { sleep 1.5; kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID"; tail -n 3 "$WORK/$1.tcpdump.log" | grep -E 'captured|dropped by kernel' | tr '\n' ' ' >> "$WORK/$1.tcpdump.sum"; }

sscount() { # ns state -> number of TCP sockets in that state
  ip netns exec "$1" ss -Htan state "$2" | wc -l
}

server_scen() { # start the scenarios server in NS_B (ports 7000, 7020, 80, 5001), sets SCEN_PID
  ip netns exec "$NS_B" timeout 200 "$PY" "$TOOLS/scenarios.py" server --bind $B4 --bind $B6 --port 7000 --port 7020 \
      --port 80 --port 5001 --max-seconds 190 > "$WORK/scen.log" 2>&1 &
  SCEN_PID=$!
  wait_ready "$WORK/scen.log"
}
scen() { client 40 "$PY" "$TOOLS/scenarios.py" "$@"; }


# ---------------------------------------------------------------------------- recordings
httpd_up() { # tcpgen HTTP-like server on 8080 (IPv4 + IPv6), sets HTTPD_PID
  ip netns exec "$NS_B" timeout 120 "$PY" "$TOOLS/tcpgen.py" httpd --bind $B4 --bind $B6 --port 8080 \
      --max-seconds 100 > "$WORK/httpd.log" 2>&1 &
  HTTPD_PID=$!
  wait_ready "$WORK/httpd.log"
}
httpd_down() { kill "$HTTPD_PID" 2>/dev/null; wait "$HTTPD_PID" 2>/dev/null; cat "$WORK/httpd.log" >> "$WORK/servers.log"; rm -f "$WORK/httpd.log"; }
scen_down() { kill "$SCEN_PID" 2>/dev/null; wait "$SCEN_PID" 2>/dev/null; cat "$WORK/scen.log" >> "$WORK/servers.log"; rm -f "$WORK/scen.log"; }

# 1. 600 short HTTP-like connections, server closes first (server side TIME_WAIT), 30% IPv6.
#    snaplen 128: headers only (payload length comes from the IP length).
rec_timewait_server_close() {
  httpd_up
  cap timewait_server_close 128 "tcp port 8080"
  client 60 "$PY" "$TOOLS/tcpgen.py" httpc --to $B4 --to $B6 --port 8080 --conns 600 --concurrency 8 \
      --client-close-frac 0 --v6-frac 0.3 --seed 2 --max-seconds 45
  log "timewait_server_close: TIME_WAIT sockets right after the run (ss -Htan state time-wait):" \
      "server namespace $(sscount "$NS_B" time-wait), client namespace $(sscount "$NS_A" time-wait)"
  stopcap timewait_server_close
  httpd_down
}

# 2. slow reader: 4 KB SO_RCVBUF, reads 2 KB every 25 ms and stops reading for 2 s after every
#    64 KB -> zero windows (short ones and 2 s ones), zero-window probes, window updates, window full
rec_slow_reader_zero_window() {
  ip netns exec "$NS_B" timeout 40 "$PY" "$TOOLS/scenarios.py" slowsink --bind $B4 --port 5002 \
      --rcvbuf 4096 --chunk 2048 --sleep-ms 25 --stall-every 65536 --stall-ms 2000 --max-seconds 30 \
      > "$WORK/slowsink.log" 2>&1 &
  local sp=$!
  wait_ready "$WORK/slowsink.log"
  cap slow_reader_zero_window 128 "tcp port 5002"
  client 40 "$PY" "$TOOLS/tcpgen.py" send --to $B4 --port 5002 --bytes 200000 --cc cubic --max-seconds 30
  wait $sp
  stopcap slow_reader_zero_window
  grep -h 'slowsink:' "$WORK/slowsink.log" | sed 's/^/slow_reader_zero_window: /' | tee -a "$REC"
}

# 3. window shrinking: the receiver's namespace has net.ipv4.tcp_shrink_window=1 and the reader
#    cuts SO_RCVBUF to 2 KB after 100 KB: the right window edge (ack + window) really moves left
rec_window_shrink() {
  inb sysctl -q -w net.ipv4.tcp_shrink_window=1 || die "no net.ipv4.tcp_shrink_window (kernel >= 6.5 needed)"
  ip netns exec "$NS_B" timeout 40 "$PY" "$TOOLS/tcpgen.py" sink --bind $B4 --port 5003 --max-conns 1 \
      --chunk 65536 --sleep-ms 2 --shrink-after 100000 --shrink-to 2048 --max-seconds 30 \
      > "$WORK/shrink.log" 2>&1 &
  local sp=$!
  wait_ready "$WORK/shrink.log"
  cap window_shrink 128 "tcp port 5003"
  client 40 "$PY" "$TOOLS/tcpgen.py" send --to $B4 --port 5003 --bytes 300000 --cc cubic --max-seconds 30
  wait $sp
  stopcap window_shrink
  inb sysctl -q -w net.ipv4.tcp_shrink_window=0
  grep -h 'sink:' "$WORK/shrink.log" | sed 's/^/window_shrink: /' | tee -a "$REC"
}

# 4. RSTs: 6 connects to closed port 7 (refused: SYN -> RST/ACK) mixed with 6 HTTP-like
#    connections the server aborts with SO_LINGER 0 after its response, then a server abort
#    mid-stream (data in flight) and a client abort mid-stream (SO_LINGER 0 while data arrives).
rec_rst_refused_aborted() {
  httpd_up; server_scen
  cap rst_refused_aborted 0 "tcp port 8080 or tcp port 7 or tcp port 7000"
  client 30 "$PY" "$TOOLS/tcpgen.py" httpc --to $B4 --port 8080 --conns 6 --abort-frac 1 \
      --refused 6 --refused-port 7 --concurrency 1 --seed 3 --max-seconds 20
  scen abort --to $B4 --port 7000 --bytes 60000
  scen clientabort --to $B4 --port 7000 --bytes 200000 --read 8000
  stopcap rst_refused_aborted
  httpd_down; scen_down
}

# 5. lossy bulk download (client namespace = receiver): 2% loss, 20 ms one way, 5% reordered
#    (relay class 5001), CUBIC sender; 3 MB, then client-first close
rec_lossy_bulk() {
  server_scen
  cap lossy_bulk 128 "tcp port 5001"
  scen download --to $B4 --port 5001 --bytes 3000000 --cc cubic
  stopcap lossy_bulk
  scen_down
}

# 6. CLOSE_WAIT: the client sends FIN (shutdown SHUT_WR) on 2 connections (IPv4 + IPv6); the
#    server reads EOF but keeps its socket open 7 s. Then a half-close: client shutdown(SHUT_WR),
#    the server keeps sending 120 KB (8 KB every 100 ms) before it closes.
rec_close_wait() {
  server_scen
  cap close_wait 128 "tcp port 7000"
  scen closewait --to $B4 --to $B6 --port 7000 --hold 7 &
  local cw=$!
  sleep 3
  log "close_wait: 3 s into the 7 s hold: server CLOSE_WAIT sockets $(sscount "$NS_B" close-wait)," \
      "client FIN_WAIT_2 sockets $(sscount "$NS_A" fin-wait-2)"
  wait $cw
  scen halfclose --to $B4 --port 7000 --bytes 120000 --gap-ms 100 &
  local hc=$!
  sleep 0.8
  log "close_wait: half-close, 0.8 s into the server's sending: server CLOSE_WAIT sockets" \
      "$(sscount "$NS_B" close-wait), client FIN_WAIT_2 sockets $(sscount "$NS_A" fin-wait-2)"
  wait $hc
  stopcap close_wait
  scen_down
}

# 7. keep-alive: SO_KEEPALIVE, TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, idle 5.5 s, then client-first close
rec_keepalive() {
  server_scen
  cap keepalive 0 "tcp port 7000"
  scen keepalive --to $B4 --port 7000 --idle 5.5 &
  local ka=$!
  sleep 3
  log "keepalive: client socket 3 s into the idle time: $(ina ss -Htano state established '( dport = :7000 )' | grep -o 'timer:([^)]*)' | head -1)"
  wait $ka
  stopcap keepalive
  scen_down
}

# 8. handshake variety: SYN retries (SYNs to port 9 are dropped by the relay; connect timeout 4 s,
#    IPv4 and IPv6), a simultaneous close (both sides shutdown(SHUT_WR) at the same wall-clock
#    instant, 20 ms each way so the FINs cross), a 4-way close (server closes 300 ms after the
#    client's FIN) and a 3-way close (server closes right after reading EOF: its FIN carries the ACK)
rec_handshake_variety() {
  server_scen
  cap handshake_variety 0 "tcp port 9 or tcp port 7000 or tcp port 7020"
  scen synretry --to $B4 --to $B6 --port 9 --timeout 4
  scen simulclose --to $B4 --port 7020
  scen close --to $B4 --port 7000 --server-delay-ms 300
  scen close --to $B4 --port 7000 --server-delay-ms 0
  stopcap handshake_variety
  scen_down
}

# 9. one small clean HTTP-like exchange, client-first 4-way close (server closes 300 ms after EOF)
rec_http_small() {
  server_scen
  cap http_small 0 "tcp port 80"
  scen http --to $B4 --port 80 --size 180
  stopcap http_small
  scen_down
}

# 10. bulk upload (client namespace = sender, the capture point) over a path that reorders 5% of
#     the frames both ways (relay class 5004, 20 ms one way, no loss): an ACK that skips the delay
#     queue overtakes earlier ACKs, which then reach the sender with a lower ACK number and a right
#     window edge left of the one it already had. 1 MB, CUBIC, then client-first close.
rec_reordered_upload() {
  ip netns exec "$NS_B" timeout 40 "$PY" "$TOOLS/tcpgen.py" sink --bind $B4 --port 5004 --max-conns 1 \
      --max-seconds 30 > "$WORK/upload.log" 2>&1 &
  local sp=$!
  wait_ready "$WORK/upload.log"
  cap reordered_upload 128 "tcp port 5004"
  client 40 "$PY" "$TOOLS/tcpgen.py" send --to $B4 --port 5004 --bytes 1000000 --cc cubic --max-seconds 30
  wait $sp
  stopcap reordered_upload
  grep -h 'sink:' "$WORK/upload.log" | sed 's/^/reordered_upload: /' | tee -a "$REC"
}

: > "$REC"
log "# RECORDING.txt — written by make_samples.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ), kernel $(uname -r)"
log "# socket counts seen with ss while recording, relay counters, tcpdump counters, tshark summary"
bed_up
for n in "${CAPTURES[@]}"; do "rec_$n"; done

kill "$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null; RELAY_PID=
log "relay counters (all captures): $(cat "$WORK/tapnetem.err")"

# ---------------------------------------------------------------------------- oracle + summary
for n in "${CAPTURES[@]}"; do
  [ -s "$NEW/$n.pcap" ] || die "$n.pcap missing or empty"
  log "$n.pcap tcpdump: $(cat "$WORK/$n.tcpdump.sum" 2>/dev/null)"
done
if command -v tshark >/dev/null; then
  args=(); for n in "${CAPTURES[@]}"; do args+=("$n.pcap"); done
  bash "$TOOLS/tshark_oracle.sh" "$NEW" "${args[@]}" & wait $! || die "tshark oracle failed"
  awk -F'\t' '$2!=0 {bad=1; print "tshark exit " $2 " on " $1 > "/dev/stderr"} END {exit bad}' \
      "$NEW/tshark_oracle_status.tsv" || die "tshark stopped early on a capture"
  rm -f "$NEW/tshark_oracle_status.tsv"
  log ""
  log "# tshark summary (tools/summarize.py over the oracle files: flag counts as tshark -Y tcp.analysis.X | wc -l)"
  "$PY" "$TOOLS/summarize.py" --check "$NEW" "${CAPTURES[@]}" | tee -a "$REC" \
    || die "a capture lacks what it was recorded for (see CHECK FAILED above); $OUT left as it was — run again"
else
  echo "make_samples: WARNING: tshark not installed, no oracle (*.tshark.tsv) written" >&2
fi

for n in "${CAPTURES[@]}"; do rm -f "$OUT/$n.pcap" "$OUT/$n.pcap.tshark.tsv"; done
[ -n "${ONLY:-}" ] && rm -f "$REC"
chown --reference="$OUT" "$NEW"/*  # tcpdump writes its files as user tcpdump
chmod 644 "$NEW"/*
mv "$NEW"/* "$OUT"/
OK=1
ls -l "$OUT"/*.pcap
echo "make_samples: done, $(du -ch "$OUT"/*.pcap | tail -1 | cut -f1) of captures in $OUT"
