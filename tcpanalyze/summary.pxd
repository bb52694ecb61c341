# Optional compiled build (Cython, pure-Python mode): summary.py is the source.  The engine's
# records are cimported so that the annotated locals of summary.py read their C fields.
from tcpanalyze.engine cimport Conn, ConnEnding, EndpointStats, EndpointTrack, Flow
from tcpanalyze.jsontext cimport fround
