# Optional compiled build (Cython, pure-Python mode): rst.py is the source; the engine's
# records are cimported so that the detectors' typed locals read their C fields.
from tcpanalyze.engine cimport Conn, Flow, Verdict
from tcpanalyze.model cimport Segment
