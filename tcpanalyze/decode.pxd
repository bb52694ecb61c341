# Optional compiled build (Cython, pure-Python mode): decode.py is the source; the compiled
# fast path builds Segment records field by field, and the packet loops (pipeline.py) call
# decode_frame and decode_at as C functions.
from libc.string cimport memcmp
from tcpanalyze.model cimport Segment

cpdef object decode_frame(long long frame, long long ts_ns, long long linktype, object buf, object counts,
                          long long wirelen)
cpdef object decode_at(long long frame, long long ts_ns, long long linktype, bytes buf, Py_ssize_t off,
                       Py_ssize_t caplen, object counts, long long wirelen)
