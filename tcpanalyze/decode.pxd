# Optional compiled build (Cython, pure-Python mode): decode.py is the source; the compiled
# fast path builds Segment records field by field.
from tcpanalyze.model cimport Segment
