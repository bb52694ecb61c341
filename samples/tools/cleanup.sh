# Sourced by the recording scripts (samples/make_samples.sh, samples/make_slow_samples.sh,
# tests/data/real/make_real.sh): `bed_cleanup NAME` stops what runs inside the two namespaces
# NS_A and NS_B and the relay RELAY_PID, deletes the namespaces, and removes WORK when OK=1
# (else keeps it and says so, naming the script NAME).  Install it with bed_traps NAME.
bed_cleanup() {
  trap '' TERM INT  # a second signal must not cut the cleanup short
  set +e
  local ns pids
  for ns in "$NS_A" "$NS_B"; do  # only processes running inside our own namespaces
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -n "$pids" ] && kill $pids 2>/dev/null
  done
  if [ -n "$RELAY_PID" ]; then kill "$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null; fi
  sleep 0.3
  for ns in "$NS_A" "$NS_B"; do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  if [ "$OK" = 1 ]; then rm -rf "$WORK"; else echo "$1: FAILED; logs kept in $WORK" >&2; fi
}

bed_traps() {  # NAME: clean up on exit, and exit on TERM / INT
  trap "bed_cleanup $1" EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
}
