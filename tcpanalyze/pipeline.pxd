# Optional compiled build (Cython, pure-Python mode): pipeline.py is the source; the loop
# decodes with a C call, reads segments and sets the analyzer's current frame as C fields.
from tcpanalyze.decode cimport decode_frame
from tcpanalyze.engine cimport Analyzer, Verdict
from tcpanalyze.model cimport Segment
