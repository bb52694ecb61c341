# Optional compiled build (Cython, pure-Python mode): fanout.py is the source; records are
# written from and read into Segment's C fields, and the worker loop feeds the Analyzer.
from tcpanalyze.engine cimport Analyzer, Verdict
from tcpanalyze.model cimport Segment
