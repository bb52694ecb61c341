# Optional compiled build (Cython, pure-Python mode): zeek.py is the source.  ZeekConn's C fields
# are not written here: setup.py generates its cdef class declaration from ZeekConn.FIELDS and
# appends it to the copy of this file it compiles (tcpanalyze/_fields.py).  These declarations
# let the engine call the per-segment functions as C functions (cimport).
cpdef bint zeek_update(object z, bint is_orig, long long flags, long long rel_seq, long long paylen, long long win,
                  bint is_retransmission)
cpdef bint zeek_settled(object z, bint is_orig)
