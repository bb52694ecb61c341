# Optional compiled build (Cython, pure-Python mode): fanout.py is the source; records are
# written from and read into Segment's C fields, the dispatcher decodes with a C call and
# feeds its own lane's Analyzer, and the worker loop feeds the Analyzer.
from tcpanalyze.decode cimport decode_at
from tcpanalyze.engine cimport Analyzer, Verdict
from tcpanalyze.model cimport Segment
