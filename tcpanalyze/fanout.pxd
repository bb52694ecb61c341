# Optional compiled build (Cython, pure-Python mode): fanout.py is the source; records are
# written from and read into Segment's C fields, the dispatcher decodes with a C call and
# feeds its own lane's Analyzer, and the worker loop feeds the Analyzer (reusing a segment
# nothing holds, and address bytes objects).
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.ref cimport Py_REFCNT
from libc.string cimport memcmp, memcpy
from tcpanalyze.decode cimport decode_at
from tcpanalyze.engine cimport Analyzer, Verdict
from tcpanalyze.model cimport Segment
