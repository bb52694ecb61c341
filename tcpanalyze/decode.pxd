# Optional compiled build (Cython, pure-Python mode): decode.py is the source; the compiled
# fast path builds Segment records field by field, and the packet loop (pipeline.py) calls
# decode_frame as a C function.
from libc.string cimport memcmp
from tcpanalyze.model cimport Segment

cpdef object decode_frame(long long frame, long long ts_ns, long long linktype, object buf, object counts,
                          long long wirelen)
