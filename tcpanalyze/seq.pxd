# Optional compiled build (Cython, pure-Python mode): seq.py is the source; these declarations
# let the engine call the helpers as C functions (cimport) instead of through Python.
cpdef long long seq_add(long long a, long long n) noexcept
cpdef long long seq_dist(long long a, long long b) noexcept
cpdef long long seq_delta(long long a, long long b) noexcept
cpdef (long long, long long) seq_dist2(long long a, long long b, long long c, long long d) noexcept
cpdef long long seq_span(long long lo, long long hi, long long base) noexcept
cpdef bint seq_gt(long long a, long long b) noexcept
cpdef bint seq_lt(long long a, long long b) noexcept
cpdef bint seq_ge(long long a, long long b) noexcept
cpdef bint seq_le(long long a, long long b) noexcept
