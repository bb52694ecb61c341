# Optional compiled build (Cython, pure-Python mode): tomb.py is the source; it reads the
# engine's C records to pack a tombstone, and keeps the tombstone store's index in bytearrays
# it reads and writes through C pointers.
from cpython.bytearray cimport PyByteArray_AS_STRING
from libc.string cimport memcpy, memset
from tcpanalyze.engine cimport Conn, Flow
