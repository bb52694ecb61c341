# Optional compiled build (Cython, pure-Python mode): engine.py is the source; this file
# types the per-connection records so the compiled hot path reads C fields.
from tcpanalyze.model cimport Segment
from tcpanalyze.seq cimport seq_add, seq_delta, seq_dist, seq_gt, seq_lt

cdef class Unacked:
    cdef public long long seq
    cdef public long long end
    cdef public long long frame
    cdef public long long ts_ns
    cdef public long long karn

cdef class EndpointStats:
    cdef public long long pkts
    cdef public long long bytes
    cdef public long long data_pkts
    cdef public long long rtx
    cdef public long long rtx_bytes
    cdef public long long fast_rtx
    cdef public long long spurious
    cdef public long long ooo
    cdef public long long lost
    cdef public long long ack_lost
    cdef public long long dupacks
    cdef public long long zero_win
    cdef public long long zwp
    cdef public long long keepalive
    cdef public long long win_full
    cdef public long long win_update
    cdef public long long syns
    cdef public long long fins
    cdef public long long rsts
    cdef public long long max_seg
    cdef public long long trunc
    cdef public long long data_after_fin

cdef class EndpointTimes:
    cdef public long long first_ns
    cdef public long long last_ns
    cdef public long long last_data_ns
    cdef public long long fin_next
    cdef public long long fin_frame
    cdef public long long fin_ns
    cdef public long long rst_frame
    cdef public long long rst_ns

cdef class EndpointTrack:
    cdef public long long rtt_n
    cdef public long long rtt_sum
    cdef public long long rtt_min
    cdef public long long rtt_max
    cdef public object rtt_samples
    cdef public long long edge
    cdef public object shrinks
    cdef public long long shrink_bytes
    cdef public object zw_open
    cdef public object zw_episodes

cdef class Flow:
    cdef public long long base_seq
    cdef public bint base_set
    cdef public bint saw_syn
    cdef public long long win_scale
    cdef public long long window
    cdef public bint is_first_ack
    cdef public long long mss
    cdef public object sack
    cdef public long long nextseq
    cdef public long long nextseqtime
    cdef public long long nextseqframe
    cdef public long long maxseqtobeacked
    cdef public long long lastack
    cdef public long long lastacktime
    cdef public long long lastnondupack
    cdef public long long dupacknum
    cdef public long long lastsegflags
    cdef public object segs
    cdef public bint segs_disordered
    cdef public long long seg_lo
    cdef public long long seg_hi
    cdef public bint valid_bif
    cdef public bint zsettled
    cdef public EndpointStats stats
    cdef public EndpointTimes times
    cdef public EndpointTrack track

cdef class ConnEnding:
    cdef public object tw_start
    cdef public long long close_initiator
    cdef public long long reset_by
    cdef public object reset_state
    cdef public long long reset_inflight

cdef class HandshakeTrack:
    cdef public long long ts_mru_syn
    cdef public long long syn_frame
    cdef public object syn_times

cdef class ZeekTrack:
    cdef public long long zorig
    cdef public object zeek_done
    cdef public long long zdeadline

cdef class Conn:
    cdef public long long stream
    cdef public object key
    cdef public object addr
    cdef public object port
    cdef public object flows
    cdef public long long orig
    cdef public bint handshake_seen
    cdef public long long first_ns
    cdef public long long last_ns
    cdef public long long first_frame
    cdef public long long last_frame
    cdef public long long irtt
    cdef public object state
    cdef public object inferred
    cdef public object timeline
    cdef public object anomalies
    cdef public object zeek
    cdef public bint done
    cdef public object end_reason
    cdef public object events
    cdef public long long frames
    cdef public ConnEnding ending
    cdef public HandshakeTrack handshake
    cdef public ZeekTrack ztrack

cdef class FlowTable:
    cdef public dict conns
    cdef public list closed
    cdef public long long streams
    cdef public long long live
    cdef public long long live_peak
    cdef public long long self_conns
    cdef public long long evicted
    cdef public long long expired
    cdef public long long max_connections
    cdef public long long linger_ns
    cdef public long long idle_timeout_ns
    cdef public bint keep_timeline

cdef class Verdict:
    cdef public object conn
    cdef public long long direction
    cdef public long long analysis
    cdef public long long rel_seq
    cdef public long long rel_ack
    cdef public long long win
    cdef public long long ack_rtt
    cdef public long long acks_frame
    cdef public long long bytes_in_flight
    cdef public long long dupack_num
    cdef public long long dupack_frame
    cdef public object reasons


# The analyzer's own state and the per-packet verdict: C fields, so feed() neither boxes the
# results nor looks its attributes up in a dictionary.
cdef class Analyzer:
    cdef public object cfg
    cdef public FlowTable table
    cdef public object done
    cdef public object on_conn_done
    cdef public object on_sweep
    cdef public object tw
    cdef public object tw_enter
    cdef public object syn_in_time_wait
    cdef public object rst_no_conn
    cdef public object first_ns
    cdef public bint explain
    cdef public bint keep_timeline
    cdef public bint keep_rtt
    cdef public long long max_unacked
    cdef public long long segments
    cdef public long long last_ns
    cdef public long long ts_backwards
    cdef public long long next_sweep
    cdef public long long cur_frame
    cdef public Verdict verdict
