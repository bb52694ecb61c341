# Optional compiled build (Cython, pure-Python mode): driver.py is the source; Detectors.examine
# reads the segment, the analyzer's verdict and the connection as C records.
from tcpanalyze.engine cimport Analyzer, Conn, Verdict
from tcpanalyze.model cimport Segment
