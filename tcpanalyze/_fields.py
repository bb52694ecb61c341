"""Record fields declared once, in the ``.py``: a class's ``FIELDS`` table.

Each entry is ``(name, C type)`` for a field its ``__init__`` takes as an argument without
a default, or ``(name, C type, default)``.  A default is a constant (int, bool, None) or a
zero-argument callable that makes a fresh value per record (``list``, another record
class).  From the one table come:

* ``__slots__``: ``slots(FIELDS)``;
* ``__init__``: ``init(FIELDS, nparams)`` writes, compiles and returns a plain function
  whose first ``nparams`` fields are its arguments (an argument with a declared default
  takes it as its default) and that stores the declared default in every other field --
  the same statements one would write by hand, so it costs what a hand-written
  ``__init__`` costs.  A record whose ``__init__`` computes its values (``Conn``,
  ``FlowTable``, ``Analyzer``) keeps its own and declares its fields without defaults;
  ``Segment`` keeps a written-out one for ``mypy`` (``model.py`` says why);
* for the compiled build, ``setup.py`` reads the tables from the source with ``ast``
  (nothing is imported) and generates the ``cdef class`` declarations of the ``.pxd``
  (``pxd_classes``) and, in the build copy of the ``.py``, a typed one-line ``def
  __init__`` in place of ``__init__ = init(...)`` (``compiled_source``).  The committed
  ``.pxd`` files hold only what is not a field (cimports, C functions, other classes).

``tests/test_fields.py`` checks that the three derived forms agree with the tables.
"""

_SOURCES = {}  # generated __init__ source per function, for the tests


def slots(fields):
    """The field names, in declaration order."""
    return tuple(f[0] for f in fields)


def _default_source(default):
    """(source of the stored value, namespace entry or None) for a declared default."""
    if callable(default):
        return f"{default.__name__}()", (default.__name__, default)
    if default is None or isinstance(default, (bool, int)):
        return repr(default), None
    raise TypeError(f"a field default is a constant or a zero-argument callable, not {default!r}")


def init_source(entries, nparams):
    """The one-line ``def __init__`` for ``entries``: (name, default source or None)."""
    params, body = ["self"], []
    for i, (name, default) in enumerate(entries):
        if i < nparams:
            params.append(name if default is None else f"{name}={default}")
            body.append(f"self.{name} = {name}")
        else:
            if default is None:
                raise ValueError(f"field {name!r} is not an argument and has no default")
            body.append(f"self.{name} = {default}")
    return f"def __init__({', '.join(params)}): " + ("; ".join(body) or "pass")


def init(fields, nparams=0):
    """``__init__`` for a record with these fields (see the module's docstring)."""
    entries, namespace = [], {}
    for i, field in enumerate(fields):
        if len(field) == 2:
            entries.append((field[0], None))
            continue
        source, ref = _default_source(field[2])
        if i < nparams and ref is not None:
            raise TypeError(f"argument {field[0]!r} cannot default to a callable")
        if ref is not None:
            namespace[ref[0]] = ref[1]
        entries.append((field[0], source))
    source = init_source(entries, nparams)
    exec(compile(source, f"<{__name__}.init>", "exec"), namespace)  # noqa: S102 - our own generated code
    fn = namespace["__init__"]
    _SOURCES[fn] = source
    return fn


# ----------------------------------------------------------------- reading the .py (setup.py)

def _tables(tree):
    """``[(class name, [(name, ctype, default source or None)], nparams or None)]`` for the
    classes of a module's AST that declare ``FIELDS``; nparams is None when the class does
    not take its ``__init__`` from ``init``."""
    import ast
    out = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields, nparams = None, None
        for stmt in node.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
                continue
            target = stmt.targets[0].id
            if target == "FIELDS":
                fields = []
                for elt in stmt.value.elts:
                    name, ctype = ast.literal_eval(elt.elts[0]), ast.literal_eval(elt.elts[1])
                    default = None
                    if len(elt.elts) == 3:
                        d = elt.elts[2]
                        default = (f"{d.id}()" if isinstance(d, ast.Name) and d.id not in ("True", "False", "None")
                                   else repr(ast.literal_eval(d)))
                    fields.append((name, ctype, default))
            elif target == "__init__" and isinstance(stmt.value, ast.Call):
                args = stmt.value.args
                nparams = ast.literal_eval(args[1]) if len(args) > 1 else 0
                for kw in stmt.value.keywords:
                    if kw.arg == "nparams":
                        nparams = ast.literal_eval(kw.value)
        if fields is not None:
            out.append((node.name, fields, nparams))
    return out


def pxd_classes(source):
    """The ``cdef class`` declarations of the records ``FIELDS`` declares in ``source``."""
    import ast
    blocks = []
    for cls, fields, _ in _tables(ast.parse(source)):
        lines = [f"cdef class {cls}:"]
        lines += [f"    cdef public {ctype} {name}" for name, ctype, _ in fields]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def generated_pxd(py_source, pxd_source):
    """The ``.pxd`` the compiled build uses: the committed one (or nothing) and the
    generated record classes."""
    classes = pxd_classes(py_source)
    if not classes:
        return pxd_source
    head = (pxd_source or "").rstrip("\n")
    return (head + "\n\n" if head else "") + "# generated from the FIELDS tables of the .py (tcpanalyze/_fields.py)\n" \
        + classes + "\n"


def compiled_source(source):
    """``source`` with each ``__init__ = init(FIELDS...)`` line of a record replaced by the
    generated one-line ``def __init__`` (same line count, so tracebacks keep their lines)."""
    import ast
    tree = ast.parse(source)
    inits = {cls: (fields, nparams) for cls, fields, nparams in _tables(tree) if nparams is not None}
    lines = source.splitlines(keepends=True)
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name not in inits:
            continue
        fields, nparams = inits[node.name]
        for stmt in node.body:
            if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id == "__init__"):
                if stmt.lineno != stmt.end_lineno:
                    raise ValueError(f"{node.name}: write '__init__ = init(FIELDS, n)' on one line")
                line = lines[stmt.lineno - 1]
                indent = line[:len(line) - len(line.lstrip())]
                lines[stmt.lineno - 1] = indent + init_source([(n, d) for n, _, d in fields], nparams) + "\n"
    return "".join(lines)
