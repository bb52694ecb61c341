# Optional compiled build (Cython, pure-Python mode): pcap.py is the source.  The C API the
# reader fills its read window with: a new bytes object the stream reads into directly.
from cpython.buffer cimport PyBUF_WRITE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.string cimport memcpy
