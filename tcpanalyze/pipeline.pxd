# Optional compiled build (Cython, pure-Python mode): pipeline.py is the source; the loops
# decode with a C call, read segments and set the analyzer's current frame as C fields.
from tcpanalyze.decode cimport decode_at, decode_frame
from tcpanalyze.engine cimport Analyzer, Verdict
from tcpanalyze.model cimport Segment
