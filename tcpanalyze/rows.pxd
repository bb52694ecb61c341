# Optional compiled build (Cython, pure-Python mode): rows.py is the source.
from tcpanalyze.engine cimport Analyzer, Conn, Verdict
from tcpanalyze.model cimport Segment

cdef class TsvRows:
    cdef public object write
    cdef public bint absolute
    cdef public object wanted
    cdef public long long flush_at
    cdef public list buf
    cdef public dict middles
    cdef public dict flag_text
    cdef public dict analysis_text
    cdef public Py_ssize_t cn
    cdef public int rel
    cdef public long long t0
    cdef char cbuf[65536]
