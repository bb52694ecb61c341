# Optional compiled build (Cython, pure-Python mode): tomb.py is the source; it reads the
# engine's C records to pack a tombstone.
from tcpanalyze.engine cimport Conn, Flow
