# Optional compiled build (Cython, pure-Python mode): jsontext.py is the source.  The C API
# the walk writes with, and fround as a C function for the summary and the diagnosis (cimport).
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.conversion cimport PyOS_double_to_string, Py_DTSF_ADD_DOT_0
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.math cimport isfinite, signbit
from libc.string cimport memcpy, strlen

cpdef double fround(double x, int k)
