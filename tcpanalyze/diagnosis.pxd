# Optional compiled build (Cython, pure-Python mode): diagnosis.py is the source.  The
# engine's records are cimported so that the annotated locals of diagnosis.py read their C
# fields.
from tcpanalyze.engine cimport Conn, EndpointPerf, EndpointTrack, Flow, PerfSplit
from tcpanalyze.jsontext cimport fround
