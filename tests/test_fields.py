"""Each record field is declared once, in its class's ``FIELDS`` table, and everything else
is derived from it: ``__slots__``, the ``__init__`` of both builds, and the compiled build's
``cdef class`` declarations (``tcpanalyze/_fields.py``, ``setup.py``)."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import tcpanalyze
from tcpanalyze import _fields, engine, model, zeek
from tcpanalyze.model import Segment

PKG = Path(tcpanalyze.__file__).resolve().parent
ROOT = PKG.parent

# every class with a FIELDS table, and how to make one
RECORDS = {
    model.Segment: lambda: Segment(1, 2, b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", 80, 81, 3, 4, 0x10, 5, 6),
    engine.TwHost: lambda: engine.TwHost(1, engine.array("q")),
    engine.Unacked: lambda: engine.Unacked(1, 2, 3, 4, 5),
    engine.EndpointStats: engine.EndpointStats,
    engine.EndpointTimes: engine.EndpointTimes,
    engine.EndpointTrack: engine.EndpointTrack,
    engine.PerfSplit: engine.PerfSplit, engine.PerfTurns: engine.PerfTurns, engine.EndpointPerf: engine.EndpointPerf,
    engine.Flow: engine.Flow,
    engine.ConnEnding: engine.ConnEnding,
    engine.HandshakeTrack: engine.HandshakeTrack,
    engine.ZeekTrack: lambda: engine.ZeekTrack(1, 2),
    engine.Conn: lambda: engine.Conn(0, RECORDS[model.Segment](), True),
    engine.FlowTable: lambda: engine.FlowTable(10, 20, 30, True),
    engine.Verdict: engine.Verdict,
    engine.Analyzer: engine.Analyzer,
    zeek.ZeekConn: zeek.ZeekConn,
}


def _py(module):
    """The module's .py (also when it runs compiled)."""
    return PKG / (module.__name__.rpartition(".")[2] + ".py")


def _module_tables(module):
    return {cls: fields for cls, fields, _ in _fields._tables(ast.parse(_py(module)
                                                                         .read_text()))}


def test_every_record_with_fields_is_listed():
    for module in (engine, model, zeek):
        declared = {getattr(module, name) for name in _module_tables(module)}
        assert declared == {cls for cls in RECORDS if cls.__module__ == module.__name__}


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda c: c.__name__)
def test_record_gets_every_declared_field(cls):
    rec = RECORDS[cls]()
    names = _fields.slots(cls.FIELDS)
    assert len(set(names)) == len(names)
    if "__slots__" in cls.__dict__:
        assert cls.__slots__ == names
    for field in cls.FIELDS:
        value = getattr(rec, field[0])  # an unset slot (pure Python) raises here
        if len(field) == 3 and field[0] not in ("sack_perm", "truncated", "mss", "wscale", "sack", "tsval", "tsecr"):
            default = field[2]
            if callable(default):
                assert type(value) is default, field
            else:
                assert value == default and type(value) is type(default) or value is default, field
    if hasattr(rec, "__dict__"):  # a record without __slots__ in pure Python: no undeclared attribute
        assert set(vars(rec)) <= set(names)
    else:
        with pytest.raises(AttributeError):
            rec.not_a_declared_field = 1


def test_segment_argument_defaults():
    seg = RECORDS[model.Segment]()
    for name, _, default in Segment.FIELDS[11:]:
        assert getattr(seg, name) == default
    seg = Segment(*range(11), mss=1460, sack=((1, 2),), truncated=True)
    assert (seg.frame, seg.paylen, seg.mss, seg.sack, seg.truncated, seg.tsval) == (0, 10, 1460, ((1, 2),), True, -1)


def test_segment_init_matches_its_fields():
    """Segment keeps a written-out __init__ (model.py says why): it takes every field, in
    FIELDS order, with the declared defaults, and stores each argument in its field."""
    import inspect
    if inspect.isfunction(Segment.__init__):  # compiled, it has no signature to read
        params = list(inspect.signature(Segment.__init__).parameters.values())[1:]
        assert [(p.name, p.default) for p in params] == [
            (f[0], f[2] if len(f) == 3 else inspect.Parameter.empty) for f in Segment.FIELDS]
    values = [object() for _ in Segment.FIELDS]
    ints = list(range(100, 100 + len(values)))
    for i, f in enumerate(Segment.FIELDS):
        if f[1] == "long long":
            values[i] = ints[i]
    seg = Segment(*values)
    assert [getattr(seg, f[0]) for f in Segment.FIELDS] == values


def test_new_segment_sets_every_field_in_order():
    """model.new_segment (the decoder's constructor) takes every field, in FIELDS order, and
    gives what Segment() does with the same values."""
    import inspect
    from tcpanalyze.model import new_segment
    if inspect.isfunction(new_segment):     # compiled, it has no signature to read
        assert list(inspect.signature(new_segment).parameters) == [f[0] for f in Segment.FIELDS]
    values = [object() for _ in Segment.FIELDS]
    for i, f in enumerate(Segment.FIELDS):
        if f[1] == "long long":
            values[i] = 100 + i
    seg = new_segment(*values)
    assert type(seg) is Segment
    assert [getattr(seg, f[0]) for f in Segment.FIELDS] == values
    ref = Segment(*values)
    assert [getattr(seg, f[0]) for f in Segment.FIELDS] == [getattr(ref, f[0]) for f in Segment.FIELDS]


def test_ast_tables_match_runtime_tables():
    """What setup.py reads from the source is what the classes hold."""
    for module in (engine, model, zeek):
        for name, fields in _module_tables(module).items():
            runtime = getattr(module, name).FIELDS
            assert [(n, t) for n, t, _ in fields] == [(f[0], f[1]) for f in runtime]
            for (_, _, src), field in zip(fields, runtime):
                if len(field) == 2:
                    assert src is None
                else:
                    assert src == (f"{field[2].__name__}()" if callable(field[2]) else repr(field[2]))


def test_compiled_init_is_the_pure_init():
    """The one-line __init__ the compiled build gets is the source of the pure one."""
    for module in (engine, model, zeek):
        source = _py(module).read_text()
        generated = _fields.compiled_source(source)
        assert len(generated.splitlines()) == len(source.splitlines())
        for cls, fields, nparams in _fields._tables(ast.parse(source)):
            klass = getattr(module, cls)
            if nparams is None:
                assert "__init__ = init(" not in ast.get_source_segment(source, next(
                    n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == cls))
                continue
            lines = {line.strip() for line in generated.splitlines()}
            pure = _fields._SOURCES.get(klass.__init__)  # None when the module runs compiled
            assert pure is None or pure in lines
            assert any(line.startswith("def __init__(self") and f"self.{fields[-1][0]} = " in line for line in lines)


def _setup_module():
    spec = importlib.util.spec_from_file_location("_tcpanalyze_setup_fields", PKG / "_fields.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_pxd_declares_every_field():
    """The cdef classes Cython compiles against: one C field per declared field, of its type,
    after what the committed .pxd holds; the committed .pxd declares no record."""
    gen = _setup_module()
    for module in (engine, model, zeek):
        py = _py(module)
        path = py.with_suffix(".pxd")
        committed = path.read_text() if path.exists() else None     # zeek.py has none
        assert committed is None or not re.search(r"^cdef class", committed, re.M)
        pxd = gen.generated_pxd(py.read_text(), committed)
        assert pxd.startswith((committed or "").rstrip("\n"))
        classes = dict(re.findall(r"^cdef class (\w+):\n((?:    .*\n?)*)", pxd, re.M))
        for name in _module_tables(module):
            cls = getattr(module, name)
            body = re.findall(r"^    cdef public (.+) (\w+)$", classes[name], re.M)
            assert [(n, t) for t, n in body] == [(f[0], f[1]) for f in cls.FIELDS]


def test_setup_generates_the_build_sources(tmp_path):
    """setup.py's generate_sources writes the .pxd and typed __init__ Cython reads."""
    spec = importlib.util.spec_from_file_location("_tcpanalyze_setup_py", ROOT / "setup.py")
    source = (ROOT / "setup.py").read_text()
    assert "def generate_sources" in source and "generate_sources()" in source
    tree = ast.parse(source)
    ns: dict = {"__file__": str(ROOT / "setup.py")}
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef))
            or (isinstance(n, ast.Assign) and not isinstance(n.value, ast.Call) or
                isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in ("HERE", "GENERATED"))]
    keep = [n for n in keep if not (isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("setuptools"))]
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(ROOT / "setup.py"), "exec"), ns)  # noqa: S102
    assert spec is not None
    out = Path(ns["generate_sources"](root=str(tmp_path / "src")))
    pxd = (out / "tcpanalyze" / "engine.pxd").read_text()
    assert "cdef class Flow:" in pxd and "    cdef public EndpointStats stats" in pxd
    assert "cdef public long long karn" in pxd
    assert "cdef class Segment:" in (out / "tcpanalyze" / "model.pxd").read_text()
    assert (out / "tcpanalyze" / "rows.pxd").read_text() == (PKG / "rows.pxd").read_text()
    py = (out / "tcpanalyze" / "engine.py").read_text()
    assert "__init__ = init(" not in py and "def __init__(self): self.pkts = 0;" in py
