# Optional compiled build (Cython, pure-Python mode): pcap.py is the source.  The C API the
# reader fills its read window with: a bytes object the stream reads into directly, new or
# recycled once nothing else holds it (its reference count, and no cached hash: a bytes
# object's hash is cached on first use, and the recycled window is left unhashed).
from cpython.buffer cimport PyBUF_WRITE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.string cimport memcpy
from cpython.ref cimport Py_REFCNT

cdef extern from *:
    """
    /* a bytes object's cached hash is unset (-1) until it is first hashed */
    static int tcpanalyze_bytes_unhashed(PyObject *b) {
    #if PY_VERSION_HEX < 0x030E0000
        return ((PyBytesObject *)b)->ob_shash == -1;
    #else
        return 0;
    #endif
    }
    """
    bint _bytes_unhashed "tcpanalyze_bytes_unhashed" (object b)
