# Optional compiled build (Cython, pure-Python mode): model.py is the source; this file only
# gives Segment C-typed fields so the compiled engine reads them without dictionary lookups.
# Without a compiler the same model.py runs as plain Python.
cdef class Segment:
    cdef public long long frame
    cdef public long long ts_ns
    cdef public object src
    cdef public object dst
    cdef public long long sport
    cdef public long long dport
    cdef public long long seq
    cdef public long long ack
    cdef public long long flags
    cdef public long long win
    cdef public long long paylen
    cdef public long long mss
    cdef public long long wscale
    cdef public object sack_perm
    cdef public object sack
    cdef public long long tsval
    cdef public long long tsecr
    cdef public object truncated
