# Optional compiled build (Cython, pure-Python mode): app_limited.py is the source; the engine's
# records are cimported so that the detectors' typed locals read their C fields.
from tcpanalyze.engine cimport Conn, EndpointPerf
