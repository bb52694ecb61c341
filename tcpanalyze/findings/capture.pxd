# Optional compiled build (Cython, pure-Python mode): capture.py is the source; the engine's
# records are cimported so that the detectors' typed locals read their C fields.
from tcpanalyze.engine cimport Conn, EndpointStats, Flow
