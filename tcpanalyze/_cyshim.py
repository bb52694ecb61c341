"""Stand-in for the ``cython`` module when Cython is not installed: the engine's type
declarations (``@cython.locals``) become no-ops and everything runs as plain Python."""

compiled = False
longlong = int


def locals(**_types):  # noqa: A001 - the name Cython uses
    def keep(f):
        return f
    return keep
