# Optional compiled build (Cython, pure-Python mode): jsontext.py is the source; this
# declaration lets the summary and the diagnosis call fround as a C function (cimport).
cpdef double fround(double x, int k)
