# Optional compiled build (Cython, pure-Python mode): pipeline.py is the source; the loop
# reads segments and sets the analyzer's current frame as C fields.
from tcpanalyze.engine cimport Analyzer, Verdict
from tcpanalyze.model cimport Segment
