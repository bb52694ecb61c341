# Optional compiled build (Cython, pure-Python mode): state.py is the source; these declarations
# let the engine call the per-segment lookups as C functions (cimport) instead of through Python.
cpdef long long event_codes(long long flags, bint acks_peer_fin)
cpdef tuple step_code(long long state, long long ev)
