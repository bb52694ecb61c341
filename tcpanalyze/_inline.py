"""The transformer behind ``tcpanalyze._fuse`` (the pure build's inliner): reads a
function and the helpers it calls with ``ast`` and writes the calls out.  Imported only
when a fused function is made (not when it comes from the cache); ``_fuse.py`` describes
what it does."""
from __future__ import annotations

import os
import sys

_AST = None             # ast.AST, once a Fuser is made
_MISSING = object()


# ---------------------------------------------------------------------- the transformer

class Refused(Exception):
    """A call that cannot be written out exactly: it stays a call."""


_SUFFIX_MARK = "__"
_FORBIDDEN_CALLS = frozenset(("locals", "vars", "eval", "exec", "globals", "super", "__class__", "dir"))
_CO_NOT_PLAIN = 0x20 | 0x80 | 0x100 | 0x200     # generator, coroutine, iterable coroutine, async generator


class _Source:
    """One module's source lines and its ``cython.declare`` constants."""

    def __init__(self, module):
        path = module.__file__
        with open(path, encoding="utf-8") as f:
            self.lines = f.read().splitlines()
        self.module = module
        self.globs = module.__dict__
        self.path = path
        self.consts = self._constants()
        self.used: dict = {}            # the constants folded (checked when the cache is read)

    def _constants(self) -> dict:
        """Names bound once, at the module's top level, by ``NAME = cython.declare(...)`` to
        a number, string or None, and never declared ``global`` in a function."""
        found = {}
        assigned: dict = {}
        for line in self.lines:
            text = line.strip()
            if text.startswith(("global ", "nonlocal ")):
                for word in text.replace(",", " ").split()[1:]:
                    assigned[word] = assigned.get(word, 0) + 2
                continue
            head, eq, rest = text.partition("=")
            if not eq or rest.startswith("=") or head.endswith(("!", "<", ">")):
                continue
            head = head.rstrip("+-*/%&|^<>@ ")       # augmented assignments count too
            for name in head.split(","):
                name = name.partition(":")[0].strip()
                if name.isidentifier():
                    assigned[name] = assigned.get(name, 0) + 1
                    if line[0] not in " \t" and rest.strip().startswith("cython.declare("):
                        found[name] = True
        consts = {}
        for name in found:
            if assigned.get(name) != 1:
                continue
            value = self.globs.get(name, _MISSING)
            if value is None or type(value) in (int, float, str, bytes, bool):
                consts[name] = value
        return consts

    def function_ast(self, fn, ast):
        """The ``def`` of ``fn`` from this file, with its own line numbers."""
        first = fn.__code__.co_firstlineno - 1
        lines = self.lines
        indent = len(lines[first]) - len(lines[first].lstrip())
        end = first
        while end < len(lines) and not (lines[end].startswith("def ", indent)
                                        and not lines[end][:indent].strip()):
            end += 1                            # decorators
        end += 1
        while end < len(lines):
            line = lines[end]
            text = line.strip()
            if text and not text.startswith(("#", ")")) and len(line) - len(line.lstrip()) <= indent:
                break
            end += 1
        text = "\n".join(line[indent:] if line.strip() else "" for line in lines[first:end])
        tree = ast.parse("\n" * first + text, self.path)     # the blank lines give the file's line numbers
        node = tree.body[0]
        if not isinstance(node, ast.FunctionDef) or node.name != fn.__code__.co_name:
            raise Refused(f"source of {fn.__qualname__} not found at line {first + 1}")
        return node


class _Template:
    """A helper ready to be written out: its parameters, its body (its own calls already
    written out, constants folded) and what it reads."""

    __slots__ = ("name", "fn", "src", "params", "body", "assigned", "locals", "free", "expr")


class Fuser:
    def __init__(self, globs: dict, inline):
        import ast
        global _AST
        _AST = ast.AST
        self.ast = ast
        self.globs = globs
        self.sources: dict = {}
        self.inline = {}
        for name in inline:
            fn = globs.get(name)
            if fn is None or not hasattr(fn, "__code__"):
                raise ValueError(f"{name} is not a function of {globs.get('__name__')}")
            self.inline[fn] = name
        self.templates: dict = {}
        self.stack: list = []
        self.counter = 0
        self.reserved: set = set()
        self.inlined: dict = {}
        self.refused: dict = {}
        self.entry_src = None

    # ------------------------------------------------------------------ sources
    def source_of(self, fn) -> _Source:
        module = sys.modules.get(fn.__module__)
        if module is None or getattr(module, "__file__", None) is None:
            raise Refused(f"no source for {fn.__qualname__}")
        src = self.sources.get(module.__name__)
        if src is None:
            src = self.sources[module.__name__] = _Source(module)
            for line in src.lines:          # names that look like the ones made here
                if _SUFFIX_MARK in line:
                    for word in _identifiers(line):
                        if _is_made(word):
                            self.reserved.add(word)
        if os.path.abspath(fn.__code__.co_filename) != os.path.abspath(src.path):
            raise Refused(f"{fn.__qualname__} was not compiled from {src.path}")
        return src

    def fresh(self, name: str) -> str:
        base = _base_name(name)
        while True:
            self.counter += 1
            made = f"{base}{_SUFFIX_MARK}{self.counter}"
            if made not in self.reserved:
                self.reserved.add(made)
                return made

    # ------------------------------------------------------------------ entry
    def build(self, entry: str, key: str):
        ast = self.ast
        cls, _, name = entry.rpartition(".")
        owner = self.globs[cls] if cls else None
        fn = owner.__dict__[name] if owner is not None else self.globs[name]
        if not hasattr(fn, "__code__") or fn.__code__.co_freevars:
            raise ValueError(f"{entry} is not a plain function")
        src = self.entry_src = self.source_of(fn)
        node = src.function_ast(fn, ast)
        body, scope = self.prepare(node, src, entry, entry_point=True)
        if owner is not None:
            for sub in _walk(node):
                if isinstance(sub, ast.Attribute) and sub.attr.startswith("__") and not sub.attr.endswith("__"):
                    raise ValueError(f"{entry} uses a private (mangled) name")
        self.stack.append(fn)
        body = self.block(body, src, scope)
        self.stack.pop()
        _strip_annotations(node.args)
        fdef = ast.FunctionDef(name=node.name, args=node.args, body=body, decorator_list=[], returns=None,
                               type_comment=None)
        ast.copy_location(fdef, node)
        module = ast.Module(body=[fdef], type_ignores=[])
        code = compile(module, f"<fused {key}>", "exec")
        ns: dict = {}
        exec(code, self.globs, ns)
        from tcpanalyze._fuse import _finish
        new = _finish(ns[node.name], fn)
        report = {"fused": True, "error": None, "cached": False, "inlined": dict(self.inlined),
                  "refused": dict(self.refused),
                  "tree": fdef, "original": fn, "function": new}
        return new, report

    # ------------------------------------------------------------------ templates
    def prepare(self, node, src: _Source, what: str, entry_point: bool = False) -> list:
        """A function's body without its docstring, its module's constants folded and what
        ``cython.compiled`` decides dropped; refuses what cannot be written out."""
        ast = self.ast
        for deco in node.decorator_list:
            if not _is_cython(deco, src, ast):
                raise Refused(f"{what} has a decorator other than Cython's")
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        params = set(_param_names(node))
        local = params | _stored(body, ast)
        for stmt in body:
            if entry_point:
                for sub in _walk(stmt):
                    if isinstance(sub, ast.Name) and sub.id in ("super", "__class__"):
                        raise ValueError(f"{what} uses {sub.id}")
            else:
                _check_body(stmt, ast, what)
        folder = _Folder(ast, src, local)
        body = [folder.visit(s) for s in body]
        flat = []
        for s in body:
            if isinstance(s, list):
                flat.extend(s)
            elif s is not None:
                flat.append(s)
        return _drop_dead(flat, ast) or [ast.copy_location(ast.Pass(), node)], local

    def template(self, fn) -> _Template:
        tpl = self.templates.get(fn)
        if isinstance(tpl, Refused):
            raise tpl
        if tpl is not None:
            return tpl
        if fn in self.stack:
            raise Refused("calls itself")
        try:
            tpl = self._template(fn)
        except Refused as e:
            self.templates[fn] = e
            raise
        self.templates[fn] = tpl
        return tpl

    def _template(self, fn) -> _Template:
        ast = self.ast
        name = self.inline[fn]
        fn_src = _as_written(fn)
        if fn_src.__code__.co_freevars or fn_src.__code__.co_flags & _CO_NOT_PLAIN:
            raise Refused("a closure, generator or coroutine")
        src = self.source_of(fn_src)
        node = src.function_ast(fn_src, ast)
        _check_signature(node, name, ast)
        body, scope = self.prepare(node, src, name)
        params = _param_names(node)
        self.stack.append(fn)
        try:
            body = self.block(body, src, scope)
        finally:
            self.stack.pop()
        tpl = _Template()
        tpl.name = name
        tpl.fn = fn
        tpl.src = src
        tpl.params = params
        tpl.body = body
        tpl.assigned = _stored(body, ast)
        tpl.locals = set(params) | tpl.assigned
        tpl.free = _loaded(body, ast) - tpl.locals
        tpl.expr = _as_expression(body, tpl.params, ast)
        return tpl

    # ------------------------------------------------------------------ call sites
    def callee(self, call, src: _Source, scope: set):
        """The helper a call names, when it is one to write out (else None)."""
        ast = self.ast
        func = call.func
        if not isinstance(func, ast.Name) or func.id in scope:
            return None
        fn = src.globs.get(func.id)
        if fn is None or fn not in self.inline:
            return None
        return fn

    def check_call(self, call, tpl: _Template, src: _Source, scope: set) -> None:
        ast = self.ast
        if call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
            raise Refused("called with keywords or *args")
        if len(call.args) != len(tpl.params):
            raise Refused("called with another number of arguments than its parameters")
        clash = tpl.free & scope
        if clash:
            raise Refused(f"reads global {sorted(clash)[0]!r}, a local name where it is called")
        for name in tpl.free:
            mine = tpl.src.globs.get(name, _MISSING)
            theirs = src.globs.get(name, _MISSING)
            if mine is not theirs:
                raise Refused(f"reads global {name!r}, another object where it is called")
            if mine is _MISSING and self.globs.get(name, _MISSING) is not _MISSING:
                raise Refused(f"reads builtin {name!r}, a global of the fused module")

    def refuse(self, fn, why: str) -> None:
        self.refused.setdefault(self.inline[fn], why)

    def block(self, stmts: list, src: _Source, scope: set) -> list:
        """A statement list with the calls to helpers written out."""
        out = []
        for s in stmts:
            out.extend(self.statement(s, src, scope))
        return out or [self.ast.copy_location(self.ast.Pass(), stmts[0])]

    def statement(self, s, src: _Source, scope: set) -> list:
        ast = self.ast
        exprs = _ExprInliner(self, src, scope)
        if isinstance(s, (ast.If, ast.While)):
            s.test = exprs.visit(s.test)
        elif isinstance(s, ast.For):
            s.iter = exprs.visit(s.iter)
        elif isinstance(s, ast.With):
            for item in s.items:
                item.context_expr = exprs.visit(item.context_expr)
        elif isinstance(s, (ast.Try, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            pass
        else:
            s = exprs.visit(s)
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(s, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                setattr(s, field, self.block(inner, src, scope))
        if isinstance(s, ast.Try):
            for h in s.handlers:
                h.body = self.block(h.body, src, scope)
        target, call = _call_site(s, ast)
        if call is None:
            return [s]
        fn = self.callee(call, src, scope)
        if fn is None:
            return [s]
        try:
            tpl = self.template(fn)
            if tpl.expr is not None:
                return [s]          # written out as an expression where it could be
            self.check_call(call, tpl, src, scope)
            out = self.write_out(tpl, call, target, s, scope)
        except Refused as e:
            self.refuse(fn, str(e))
            return [s]
        self.inlined[tpl.name] = self.inlined.get(tpl.name, 0) + 1
        return out

    def write_out(self, tpl: _Template, call, target, at, scope: set) -> list:
        """The statements that do what ``at`` (a statement whose value is ``call``) does."""
        ast = self.ast
        assigned = tpl.assigned
        rename = {}
        subst = {}
        binds = []
        for p, arg in zip(tpl.params, call.args):
            if p not in assigned and (isinstance(arg, ast.Constant) or
                                      (isinstance(arg, ast.Name) and (arg.id in scope or _is_made(arg.id)))):
                subst[p] = arg
            else:
                rename[p] = self.fresh(p)
                binds.append(ast.copy_location(ast.Assign(targets=[_name(rename[p], ast.Store(), ast, at)],
                                                          value=arg), at))
        for name in sorted(tpl.locals):
            if name not in rename and name not in subst:
                rename[name] = self.fresh(name)
        body = _Renamer(ast, rename, subst).visit_list(_copy(tpl.body))
        if tpl.src is not self.entry_src:
            for s in body:
                _relocate(s, at, ast)
        kind, tname, op = target
        after = []
        if kind == "value":
            tname = self.fresh("result")
            after = [ast.copy_location(ast.Return(value=_name(tname, ast.Load(), ast, at)), at)]
            kind = "assign"
        elif kind == "assign_then":
            tname = self.fresh("result")
            after = [ast.copy_location(ast.Assign(targets=at.targets, value=_name(tname, ast.Load(), ast, at)), at)]
            kind = "assign"
        if kind != "none" and not _terminates(body, ast):
            body.append(ast.copy_location(ast.Return(value=None), at))
        body = _tailify(body, ast)
        loop = [False]
        body = _returns(body, True, ast, (kind, tname, op), loop)
        if loop[0]:
            if not (body and isinstance(body[-1], ast.Break)):
                body.append(ast.copy_location(ast.Break(), at))
            body = [ast.copy_location(ast.While(test=ast.copy_location(ast.Constant(True), at), body=body,
                                                orelse=[]), at)]
        return binds + body + after


class _ExprInliner:
    """Writes out the calls of an expression to helpers that are one expression."""

    def __init__(self, fuser: Fuser, src: _Source, scope: set):
        self.f = fuser
        self.src = src
        self.scope = scope
        self.ast = fuser.ast

    def visit(self, node):
        ast = self.ast
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return node
        _map_children(node, self.visit)
        if isinstance(node, ast.Call):
            return self.call(node)
        return node

    def call(self, call):
        f = self.f
        fn = f.callee(call, self.src, self.scope)
        if fn is None:
            return call
        try:
            tpl = f.template(fn)
            if tpl.expr is None:
                return call
            f.check_call(call, tpl, self.src, self.scope)
            out = self.write_out(tpl, call)
        except Refused as e:
            f.refuse(fn, str(e))
            return call
        f.inlined[tpl.name] = f.inlined.get(tpl.name, 0) + 1
        return out

    def write_out(self, tpl: _Template, call):
        ast = self.ast
        f = self.f
        for arg in call.args:
            if not _pure(arg, ast):
                raise Refused("an argument that is not a plain expression")
        assigns, result = tpl.expr
        rename = {name: f.fresh(name) for name in sorted(tpl.locals)}
        r = _Renamer(ast, rename, {})
        syms = [(rename[p], arg) for p, arg in zip(tpl.params, call.args)]
        syms += [(rename[name], r.visit(_copy(value))) for name, value in assigns]
        expr = r.visit(_copy(result))
        for sym, value in reversed(syms):
            expr = _substitute(expr, sym, value, ast)
        if tpl.src is not f.entry_src:
            _relocate(expr, call, ast)
        return expr


# ---------------------------------------------------------------------- AST helpers

def _as_written(fn):
    """The function as its source has it: a helper that was itself fused (another module's
    entry) is written out from its source, its own helpers written into it again here."""
    wrapped = getattr(fn, "__wrapped__", None)
    if wrapped is not None and fn.__code__.co_filename.startswith("<fused "):
        return wrapped
    return fn


def _identifiers(line: str):
    word = []
    for ch in line + " ":
        if ch.isalnum() or ch == "_":
            word.append(ch)
        elif word:
            yield "".join(word)
            word = []


def _is_made(name: str) -> bool:
    head, mark, tail = name.rpartition(_SUFFIX_MARK)
    return bool(mark and head and tail.isdigit())


def _base_name(name: str) -> str:
    return name.rpartition(_SUFFIX_MARK)[0] if _is_made(name) else name


def _name(ident: str, ctx, ast, at):
    return ast.copy_location(ast.Name(id=ident, ctx=ctx), at)


def _copy(node):
    """A copy of an AST (a node or a list of them): every node new, positions kept."""
    t = type(node)
    if t is list:
        return [_copy(x) for x in node]
    new = t.__new__(t)
    d = new.__dict__
    d.update(node.__dict__)
    for field in node._fields:
        v = d.get(field)
        if type(v) is list:
            d[field] = [_copy(x) if isinstance(x, _AST) else x for x in v]
        elif isinstance(v, _AST):
            d[field] = _copy(v)
    return new


def _walk(node) -> list:
    """``node`` and every node under it (``node`` may be a list of statements)."""
    out = list(node) if type(node) is list else [node]
    for n in out:
        d = n.__dict__
        for field in n._fields:
            v = d.get(field)
            if type(v) is list:
                out.extend(x for x in v if isinstance(x, _AST))
            elif isinstance(v, _AST):
                out.append(v)
    return out


def _children(node):
    """(field, value) of the fields of ``node`` that hold nodes or lists."""
    d = node.__dict__
    for field in node._fields:
        v = d.get(field)
        if type(v) is list or isinstance(v, _AST):
            yield field, v


def _map_children(node, visit) -> None:
    """Replaces each node ``node`` holds (directly or in a list field) by ``visit`` of it."""
    for field, value in _children(node):
        if type(value) is list:
            setattr(node, field, [visit(v) if isinstance(v, _AST) else v for v in value])
        else:
            setattr(node, field, visit(value))


def _param_names(node) -> list:
    a = node.args
    return [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs] + \
        [x.arg for x in (a.vararg, a.kwarg) if x is not None]


def _check_signature(node, what: str, ast) -> None:
    a = node.args
    if a.vararg or a.kwarg or a.kwonlyargs:
        raise Refused(f"{what} takes *args, **kwargs or keyword-only parameters")


def _strip_annotations(a) -> None:
    for x in a.posonlyargs + a.args + a.kwonlyargs + [v for v in (a.vararg, a.kwarg) if v is not None]:
        x.annotation = None


def _is_cython(deco, src: _Source, ast) -> bool:
    """``@cython.x`` or ``@cython.x(...)`` where ``cython`` is the module's Cython (or stand-in)."""
    node = deco.func if isinstance(deco, ast.Call) else deco
    if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
        return False
    mod = src.globs.get(node.value.id)
    return getattr(mod, "__name__", "").split(".")[-1] in ("cython", "_cyshim")


def _check_body(stmt, ast, what: str) -> None:
    """Refuses what cannot be written out into another function."""
    bad = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.Yield, ast.YieldFrom,
           ast.Await, ast.Global, ast.Nonlocal, ast.Import, ast.ImportFrom, ast.ListComp, ast.SetComp,
           ast.DictComp, ast.GeneratorExp, ast.AsyncFor, ast.AsyncWith, getattr(ast, "Match", ast.Lambda))
    for node in _walk(stmt):
        if isinstance(node, bad):
            raise Refused(f"{what} has a {type(node).__name__}")
        if isinstance(node, ast.Name) and node.id in _FORBIDDEN_CALLS:
            raise Refused(f"{what} uses {node.id}")
        if isinstance(node, (ast.For, ast.While, ast.Try, ast.With)) or type(node).__name__ == "TryStar":
            for inner in _walk(node):
                if isinstance(inner, ast.Return):
                    raise Refused(f"{what} returns from inside a {type(node).__name__.lower()}")


def _stored(stmts, ast) -> set:
    """Names a statement list binds (assignments, loop targets, ``:=``, ``del``, ``as``)."""
    out = set()
    name, load, handler = ast.Name, ast.Load, ast.ExceptHandler
    for node in _walk(stmts):
        t = type(node)
        if t is name:
            if type(node.ctx) is not load:
                out.add(node.id)
        elif t is handler and node.name:
            out.add(node.name)
    return out


def _loaded(stmts, ast) -> set:
    name, load = ast.Name, ast.Load
    return {node.id for node in _walk(stmts) if type(node) is name and type(node.ctx) is load}


class _Folder:
    """Folds a module's declared constants and ``cython.compiled``; drops the branches of an
    ``if`` that a constant decides."""

    def __init__(self, ast, src: _Source, local: set):
        self.ast = ast
        self.src = src
        self.local = local

    def visit(self, node):
        ast = self.ast
        for field, value in _children(node):
            if isinstance(value, list):
                new = []
                for v in value:
                    if isinstance(v, ast.AST):
                        v = self.visit(v)
                        if isinstance(v, list):
                            new.extend(v)
                            continue
                    new.append(v)
                if value and isinstance(value[0], ast.stmt):
                    new = _drop_dead(new, ast) or [ast.copy_location(ast.Pass(), value[0])]
                setattr(node, field, new)
            elif isinstance(value, ast.AST):
                setattr(node, field, self.visit(value))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in self.local \
                and node.id in self.src.consts:
            self.src.used[node.id] = self.src.consts[node.id]
            return ast.copy_location(ast.Constant(self.src.consts[node.id]), node)
        if isinstance(node, ast.Attribute) and node.attr == "compiled" and isinstance(node.value, ast.Name) \
                and node.value.id not in self.local and isinstance(node.ctx, ast.Load) \
                and _is_cython(node, self.src, ast):
            return ast.copy_location(ast.Constant(False), node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not) and isinstance(node.operand, ast.Constant):
            return ast.copy_location(ast.Constant(not node.operand.value), node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Constant):
            taken = node.body if node.test.value else node.orelse
            return _drop_dead(taken, ast) or [ast.copy_location(ast.Pass(), node)]
        return node


def _drop_dead(stmts: list, ast) -> list:
    """Statements up to the first ``return`` or ``raise`` of the list."""
    for i, s in enumerate(stmts):
        if isinstance(s, (ast.Return, ast.Raise)):
            return stmts[:i + 1]
    return stmts


class _Renamer:
    def __init__(self, ast, rename: dict, subst: dict):
        self.ast = ast
        self.rename = rename
        self.subst = subst

    def visit_list(self, stmts):
        return [self.visit(s) for s in stmts]

    def visit(self, node):
        ast = self.ast
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load) and node.id in self.subst:
                return ast.copy_location(_copy(self.subst[node.id]), node)
            if node.id in self.rename:
                node.id = self.rename[node.id]
            return node
        if isinstance(node, ast.ExceptHandler) and node.name in self.rename:
            node.name = self.rename[node.name]
        _map_children(node, self.visit)
        return node


def _relocate(node, at, ast) -> None:
    """Gives ``node`` and what it holds the position of ``at`` (code from another module:
    its line numbers would name lines of that module)."""
    for sub in _walk(node):
        if "lineno" in sub._attributes:
            sub.lineno = at.lineno
            sub.end_lineno = at.end_lineno
            sub.col_offset = at.col_offset
            sub.end_col_offset = at.end_col_offset


def _call_site(s, ast):
    """(target, call) when statement ``s`` is a call whose value goes to one place:
    target ("none"|"assign"|"aug"|"value"|"assign_then", name, op)."""
    if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call):
        return ("none", None, None), s.value
    if isinstance(s, ast.Assign) and isinstance(s.value, ast.Call):
        if len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
            return ("assign", s.targets[0].id, None), s.value
        return ("assign_then", None, None), s.value
    if isinstance(s, ast.AugAssign) and isinstance(s.value, ast.Call) and isinstance(s.target, ast.Name):
        return ("aug", s.target.id, s.op), s.value
    if isinstance(s, ast.Return) and isinstance(s.value, ast.Call):
        return ("value", None, None), s.value
    return None, None


def _terminates(stmts, ast) -> bool:
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return bool(last.orelse) and _terminates(last.body, ast) and _terminates(last.orelse, ast)
    return False


def _has_return(stmts, ast) -> bool:
    ret = ast.Return
    return any(type(n) is ret for n in _walk(stmts))


def _tailify(stmts: list, ast) -> list:
    """Moves the statements after an ``if`` whose one branch ends in a return into its other
    branch, so that the returns end the list."""
    for i, s in enumerate(stmts):
        if isinstance(s, ast.If) and i + 1 < len(stmts) and _has_return([s], ast):
            rest = stmts[i + 1:]
            if _terminates(s.body, ast):
                s.body = _tailify(s.body, ast)
                s.orelse = _tailify(s.orelse + rest, ast)
                return stmts[:i + 1]
            if s.orelse and _terminates(s.orelse, ast):
                s.body = _tailify(s.body + rest, ast)
                s.orelse = _tailify(s.orelse, ast)
                return stmts[:i + 1]
        if isinstance(s, ast.If):
            s.body = _tailify(s.body, ast)
            s.orelse = _tailify(s.orelse, ast)
    return stmts


def _returns(stmts: list, tail: bool, ast, target: tuple, loop: list) -> list:
    """Each ``return`` as the assignment of its value to the call's target; one that does
    not end the copy is followed by ``break`` (``loop[0]`` set: the copy needs its loop)."""
    out = []
    for i, s in enumerate(stmts):
        last = tail and i == len(stmts) - 1
        if isinstance(s, ast.Return):
            out.extend(_result(s, target, ast))
            if not last:
                out.append(ast.copy_location(ast.Break(), s))
                loop[0] = True
            break
        if isinstance(s, ast.If):
            s.body = _returns(s.body, last, ast, target, loop) or [ast.copy_location(ast.Pass(), s)]
            s.orelse = _returns(s.orelse, last, ast, target, loop)
        out.append(s)
    return out


def _result(ret, target: tuple, ast) -> list:
    kind, tname, op = target
    value = ret.value if ret.value is not None else ast.copy_location(ast.Constant(None), ret)
    if kind == "none":
        if _pure(value, ast):
            return []
        return [ast.copy_location(ast.Expr(value=value), ret)]
    if kind == "assign":
        if isinstance(value, ast.Name) and value.id == tname:
            return []               # x = x
        return [ast.copy_location(ast.Assign(targets=[_name(tname, ast.Store(), ast, ret)], value=value), ret)]
    if kind == "aug":
        return [ast.copy_location(ast.AugAssign(target=_name(tname, ast.Store(), ast, ret), op=op, value=value), ret)]
    raise ValueError(kind)


# ---------------------------------------------------------------------- expressions

def _pure(node, ast) -> bool:
    """An expression of names, constants, attribute reads, arithmetic and comparisons: no
    call, no subscript, nothing that can fail on numbers (division, shifts by a variable)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Attribute):
        return isinstance(node.ctx, ast.Load) and _pure(node.value, ast)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)):
            if not (isinstance(node.right, ast.Constant) and type(node.right.value) is int and node.right.value):
                return False
        if isinstance(node.op, (ast.LShift, ast.RShift)):
            if not (isinstance(node.right, ast.Constant) and type(node.right.value) is int and node.right.value >= 0):
                return False
        return _pure(node.left, ast) and _pure(node.right, ast)
    if isinstance(node, ast.UnaryOp):
        return _pure(node.operand, ast)
    if isinstance(node, ast.BoolOp):
        return all(_pure(v, ast) for v in node.values)
    if isinstance(node, ast.Compare):
        return _pure(node.left, ast) and all(_pure(c, ast) for c in node.comparators)
    if isinstance(node, ast.IfExp):
        return _pure(node.test, ast) and _pure(node.body, ast) and _pure(node.orelse, ast)
    if isinstance(node, ast.Tuple):
        return isinstance(node.ctx, ast.Load) and all(_pure(e, ast) for e in node.elts)
    if isinstance(node, ast.NamedExpr):
        return _is_made(node.target.id) and _pure(node.value, ast)
    return False


def _trivial(node, ast) -> bool:
    """Cheap to evaluate twice: a name, a constant, an attribute read of a name."""
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    return isinstance(node, ast.Attribute) and _trivial(node.value, ast)


def _as_expression(body: list, params: list, ast):
    """``(assignments, result)`` when ``body`` is ``name = expr`` statements then ``return
    expr``, all plain expressions, no parameter assigned; else None."""
    if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
        return None
    assigns = []
    seen = set(params)
    for s in body[:-1]:
        if not (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)):
            return None
        name = s.targets[0].id
        if name in seen or not _pure(s.value, ast):
            return None
        seen.add(name)
        assigns.append((name, s.value))
    if not _pure(body[-1].value, ast):
        return None
    return assigns, body[-1].value


def _in_order(node, ast, cond=False):
    """(Name node, evaluated only sometimes) for the names of ``node`` in evaluation order."""
    if isinstance(node, ast.Name):
        yield node, cond
    elif isinstance(node, ast.BoolOp):
        yield from _in_order(node.values[0], ast, cond)
        for v in node.values[1:]:
            yield from _in_order(v, ast, True)
    elif isinstance(node, ast.IfExp):
        yield from _in_order(node.test, ast, cond)
        yield from _in_order(node.body, ast, True)
        yield from _in_order(node.orelse, ast, True)
    elif isinstance(node, ast.Compare):
        yield from _in_order(node.left, ast, cond)
        for i, c in enumerate(node.comparators):
            yield from _in_order(c, ast, cond or i > 0)
    elif isinstance(node, ast.BinOp):
        yield from _in_order(node.left, ast, cond)
        yield from _in_order(node.right, ast, cond)
    elif isinstance(node, ast.UnaryOp):
        yield from _in_order(node.operand, ast, cond)
    elif isinstance(node, ast.Attribute):
        yield from _in_order(node.value, ast, cond)
    elif isinstance(node, ast.Tuple):
        for e in node.elts:
            yield from _in_order(e, ast, cond)
    elif isinstance(node, ast.NamedExpr):
        yield from _in_order(node.value, ast, cond)
    elif not isinstance(node, ast.Constant):
        raise Refused(f"unexpected {type(node).__name__} in an expression")


def _substitute(expr, sym: str, value, ast):
    """``expr`` with the name ``sym`` replaced by ``value``: in place when used once or cheap
    to repeat, else bound by ``:=`` at its first evaluation (which must always happen)."""
    uses = [(n, c) for n, c in _in_order(expr, ast) if n.id == sym]
    if not uses:
        return expr
    if len(uses) == 1 or _trivial(value, ast):
        first = None
    else:
        if uses[0][1]:
            raise Refused("a value used twice whose first use is evaluated only sometimes")
        first = uses[0][0]

    class Sub:
        def visit(self, node):
            if isinstance(node, ast.Name) and node.id == sym and isinstance(node.ctx, ast.Load):
                if first is None:
                    return ast.copy_location(_copy(value), node)
                if node is first:
                    return ast.copy_location(ast.NamedExpr(target=ast.copy_location(
                        ast.Name(id=sym, ctx=ast.Store()), node), value=value), node)
                return node
            _map_children(node, self.visit)
            return node

    return Sub().visit(expr)
