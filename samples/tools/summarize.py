#!/usr/bin/env python3
"""Summarise captures from their tshark oracle files (<capture>.pcap.tshark.tsv, written by
tshark_oracle.sh) and check that each sample shows what it was recorded for — written for
tcpanalyze's samples (MIT).

  summarize.py [--check] DIR NAME [NAME ...]      (reads DIR/NAME.pcap.tshark.tsv)

Per capture: TCP packets, streams (IPv4/IPv6), duration, SYN / SYN-ACK / FIN / RST counts, every
tcp.analysis.* flag that occurs (a row counts once per flag, as `tshark -Y tcp.analysis.X | wc -l`)
and:
  refused            streams whose SYN was answered by RST/ACK
  active_close       which side sent the first FIN: resp (the side that sent SYN/ACK, the server)
                     or orig (the side that sent the SYN)
  max_fin_gap        longest time between a stream's first FIN and the other side's FIN
  data_after_fin     payload segments a side sent after the other side's FIN (half-close)
  win_edge_retreats  ACKs whose ACK + scaled window lies left of the furthest edge that direction
                     advertised before (as make_traces.sh's summary); max: the largest distance
  win_edge_drops     ACKs whose edge lies left of the previous ACK's edge
  old_acks           ACKs (no data, no SYN/FIN/RST) whose ACK number lies below the highest one that
                     direction sent before: sent earlier, delivered after a later ACK (reordered);
                     old_ack_retreats: those whose edge lies left of the furthest edge (shown
                     only when there are any)
  closes             per stream: 4way (FIN, a separate ACK of it, then the other FIN), 3way (the
                     second FIN is the first packet acknowledging the first FIN), simul (the second
                     FIN does not acknowledge the first: the FINs crossed), half (one FIN only),
                     rst (no FIN pair, a RST), open (no FIN, no RST)
With --check: exit 1 when a capture lacks what make_samples.sh recorded it for (CHECKS below).
"""
import sys
from collections import Counter, defaultdict

FLAGS = ['retransmission', 'fast_retransmission', 'spurious_retransmission', 'out_of_order',
         'lost_segment', 'ack_lost_segment', 'duplicate_ack', 'zero_window', 'zero_window_probe',
         'zero_window_probe_ack', 'window_full', 'window_update', 'keep_alive', 'keep_alive_ack',
         'reused_ports']
SER = 1 << 32

# what each sample must show (metric name -> minimum), checked with --check
CHECKS = {
    'timewait_server_close': {'streams': 600, 'streams_v6': 1, 'active_close_resp': 600},
    'slow_reader_zero_window': {'zero_window': 5, 'window_update': 2, 'window_full': 5, 'keep_alive': 2},
    'window_shrink': {'win_edge_retreats': 1, 'win_edge_max_retreat': 10000, 'zero_window': 1},
    'rst_refused_aborted': {'refused': 6, 'rst': 12},
    'lossy_bulk': {'retransmission': 10, 'fast_retransmission': 1, 'duplicate_ack': 10, 'out_of_order': 1},
    'close_wait': {'max_fin_gap': 6.0, 'data_after_fin': 10},
    'keepalive': {'keep_alive': 3, 'keep_alive_ack': 3},
    'handshake_variety': {'syn_retransmission': 4, 'close_simul': 1, 'close_3way': 1, 'close_4way': 1},
    'http_small': {'close_4way': 1},
    'reordered_upload': {'old_acks': 10, 'old_ack_retreats': 10, 'out_of_order': 1},
}


def rows(path):
    with open(path) as f:
        head = f.readline().rstrip('\n').split('\t')
        for line in f:
            yield dict(zip(head, line.rstrip('\n').split('\t')))


def analyse(path):
    m = Counter()
    streams = {}
    edge = {}      # (stream, sender) -> furthest right edge advertised
    prev = {}      # (stream, sender) -> right edge of the previous ACK
    top_ack = {}   # (stream, sender) -> highest ACK number sent (tcp.ack, relative)
    max_retreat = 0
    fins = defaultdict(list)   # stream -> [(frame, srcport, seq_raw + len + 1, time)]
    acks = defaultdict(list)   # stream -> [(frame, srcport, ack_raw)]
    responder = {}             # stream -> port of the side that sent SYN/ACK (or RST/ACK to a SYN)
    syn_seen = set()
    rsts = set()
    t0 = t1 = None
    for r in rows(path):
        m['tcp_pkts'] += 1
        t = float(r['frame.time_epoch'])
        t0 = t if t0 is None else t0
        t1 = t
        st = r['tcp.stream']
        sp = r['tcp.srcport']
        streams.setdefault(st, 'v6' if r.get('ipv6.src') else 'v4')
        for fl in FLAGS:
            if r.get('tcp.analysis.' + fl):
                m[fl] += 1
        fv = int(r['tcp.flags'], 16)
        s_, a_, f_, r_ = fv & 2, fv & 16, fv & 1, fv & 4
        seglen = int(r['tcp.len'] or 0)
        if s_:
            if a_:
                m['synack'] += 1
                responder.setdefault(st, sp)
            else:
                m['syn'] += 1
                if st in syn_seen and r.get('tcp.analysis.retransmission'):
                    m['syn_retransmission'] += 1
                syn_seen.add(st)
        if r_:
            m['rst'] += 1
            rsts.add(st)
            if a_ and st in syn_seen and st not in responder:
                responder[st] = sp
                m['refused'] += 1
        if seglen and any(p != sp for _, p, _, _ in fins.get(st, ())):
            m['data_after_fin'] += 1
        if f_:
            m['fin'] += 1
            fins[st].append((int(r['frame.number']), sp, (int(r['tcp.seq_raw']) + seglen + 1) % SER, t))
        if a_ and not s_ and not r_:
            acks[st].append((int(r['frame.number']), sp, int(r['tcp.ack_raw'])))
            try:
                e = int(r['tcp.ack']) + int(r['tcp.window_size'])
            except ValueError:
                continue
            k = (st, sp)
            if not seglen and k in top_ack and int(r['tcp.ack']) < top_ack[k]:
                m['old_acks'] += 1
                if e < edge[k]:
                    m['old_ack_retreats'] += 1
            top_ack[k] = max(top_ack.get(k, 0), int(r['tcp.ack']))
            if k in prev and e < prev[k]:
                m['win_edge_drops'] += 1
            prev[k] = e
            if k in edge and e < edge[k]:
                m['win_edge_retreats'] += 1
                max_retreat = max(max_retreat, edge[k] - e)
            if k not in edge or e > edge[k]:
                edge[k] = e
    closes = Counter()
    max_gap = 0.0
    for st in streams:
        sides = {}
        for fr, sp, end, t in fins.get(st, []):
            sides.setdefault(sp, (fr, end, t))
        if sides:
            first = min(sides.items(), key=lambda kv: kv[1][0])[0]
            m['active_close_resp' if first == responder.get(st) else 'active_close_orig'] += 1
        if len(sides) < 2:
            closes['rst' if st in rsts else ('half' if sides else 'open')] += 1
            continue
        (sp1, (fr1, end1, ta)), (sp2, (fr2, end2, tb)) = sorted(sides.items(), key=lambda kv: kv[1][0])
        max_gap = max(max_gap, tb - ta)
        # the first packet from side 2 acknowledging side 1's FIN
        ack_of_1 = next((a for a in acks[st] if a[1] == sp2 and a[2] == end1), None)
        if ack_of_1 is None or ack_of_1[0] > fr2:
            closes['simul'] += 1  # side 2's FIN did not acknowledge side 1's: they crossed
        elif ack_of_1[0] == fr2:
            closes['3way'] += 1
        else:
            closes['4way'] += 1
    m['streams'] = len(streams)
    m['streams_v6'] = sum(1 for v in streams.values() if v == 'v6')
    m['duration'] = (t1 or 0) - (t0 or 0)
    m['max_fin_gap'] = max_gap
    m['win_edge_max_retreat'] = max_retreat
    for k, v in closes.items():
        m['close_' + k] = v
    return m


def fmt(m):
    out = ['tcp_pkts=%d streams=%d (v6 %d) duration=%.1fs' % (m['tcp_pkts'], m['streams'], m['streams_v6'],
                                                               m['duration']),
           'syn=%d synack=%d fin=%d rst=%d' % (m['syn'], m['synack'], m['fin'], m['rst'])]
    for k in ['syn_retransmission', 'refused'] + FLAGS:
        if m[k]:
            out.append('%s=%d' % (k, m[k]))
    out.append('active_close: resp=%d orig=%d' % (m['active_close_resp'], m['active_close_orig']))
    if m['max_fin_gap'] >= 0.5:
        out.append('max_fin_gap=%.1fs' % m['max_fin_gap'])
    if m['data_after_fin']:
        out.append('data_after_fin=%d' % m['data_after_fin'])
    out.append('win_edge_retreats=%d (max %d bytes) win_edge_drops=%d'
               % (m['win_edge_retreats'], m['win_edge_max_retreat'], m['win_edge_drops']))
    if m['old_acks']:
        out.append('old_acks=%d old_ack_retreats=%d' % (m['old_acks'], m['old_ack_retreats']))
    out.append('closes: ' + ' '.join('%s=%d' % (k[6:], v) for k, v in sorted(m.items())
                                     if k.startswith('close_') and v))
    return ' '.join(out)


def main():
    args = sys.argv[1:]
    check = args and args[0] == '--check'
    if check:
        args = args[1:]
    d, names = args[0], args[1:]
    bad = 0
    for name in names:
        m = analyse('%s/%s.pcap.tshark.tsv' % (d, name))
        print('%s.pcap: %s' % (name, fmt(m)))
        if check:
            for k, lo in CHECKS.get(name, {}).items():
                if m[k] < lo:
                    print('CHECK FAILED: %s.pcap: %s=%s, expected >= %s' % (name, k, m[k], lo), file=sys.stderr)
                    bad = 1
    sys.exit(bad)


if __name__ == '__main__':
    main()
