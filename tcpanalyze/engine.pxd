# Optional compiled build (Cython, pure-Python mode): engine.py is the source.  The records'
# C fields (Unacked, Flow, Conn, Verdict, Analyzer ...) are not written here: setup.py
# generates their cdef class declarations from the FIELDS tables in engine.py and appends
# them to the copy of this file it compiles (tcpanalyze/_fields.py).
from libc.string cimport memcmp
from tcpanalyze.model cimport Segment
from tcpanalyze.zeek cimport ZeekConn, zeek_update
from tcpanalyze.seq cimport seq_add, seq_delta, seq_dist, seq_dist2, seq_gt, seq_lt, seq_span
from tcpanalyze.state cimport event_codes, step_code
