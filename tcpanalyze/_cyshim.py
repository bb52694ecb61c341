"""Stand-in for the ``cython`` module when Cython is not installed: the core's type
declarations (``@cython.locals``, ``@cython.cfunc`` ...) become no-ops, the C type names mere
placeholders, and everything runs as plain Python.  Code that only makes sense compiled
sits behind ``if cython.compiled:`` and never runs here."""

compiled = False


class _CType(type):
    """A C type name: subscripting it (a memoryview type such as ``longlong[::1]``) gives
    the same placeholder."""

    def __getitem__(cls, _item):
        return cls


class longlong(int, metaclass=_CType):  # noqa: N801 - Cython's name
    pass


Py_ssize_t = bint = char = uchar = int = uint = ulonglong = longlong  # noqa: A001 - Cython's names


class double(float, metaclass=_CType):  # noqa: N801 - Cython's name
    pass


p_uchar = p_char = p_longlong = p_int = p_ushort = p_uint = object


def locals(**_types):  # noqa: A001 - the name Cython uses
    def keep(f):
        return f
    return keep


def returns(_type):
    return locals()


def cfunc(f):
    return f


inline = ccall = cfunc


def cdivision(_flag):
    return locals()


def exceptval(*_value, check=True):
    return locals()


def declare(_type=None, value=None, **_kw):
    """``x = cython.declare(type, value)``: a C variable when compiled, here just the value."""
    return value
