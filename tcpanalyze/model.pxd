# Optional compiled build (Cython, pure-Python mode): model.py is the source.  Segment's C
# fields, which the compiled engine reads without dictionary lookups, are not written here:
# setup.py generates its cdef class declaration from Segment.FIELDS in model.py and appends
# it to the copy of this file it compiles (tcpanalyze/_fields.py).  Without a compiler the
# same model.py runs as plain Python.
