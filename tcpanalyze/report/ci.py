"""Outputs of ``tcpanalyze check``: plain-text summary, JSON document, JUnit XML, GitHub Actions
annotations.  Pure functions of the ``FileResult`` list (``tcpanalyze.policy``); no click, no rich.

JUnit layout: one ``<testsuite>`` per input file (``name`` = the path as given), one ``<testcase>``
per rule (``name`` = the rule id, e.g. ``max_rst``, ``api/max_rst``, ``forbid.zero_window``,
``baseline.retransmission_rate``; ``classname`` = the path); a failed rule has a ``<failure>``
whose ``message`` is the one-line verdict and whose text is the evidence (connections, frames);
an unreadable file is a single ``read`` test case with an ``<error>``; a rule with nothing to
measure is ``<skipped>``.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from tcpanalyze._version import __version__
from tcpanalyze.policy import ERROR, FAIL, PASS, SKIP, FileResult, exit_code

CHECK_SCHEMA_VERSION = 1

# ---------------------------------------------------------------------------- totals
def totals(files: list[FileResult]) -> dict:
    res = [r for f in files for r in f.results]
    return {
        "files": len(files),
        "files_passed": sum(1 for f in files if f.status == PASS),
        "files_failed": sum(1 for f in files if f.status == FAIL),
        "files_unreadable": sum(1 for f in files if f.error),
        "rules": len(res),
        "passed": sum(1 for r in res if r.status == PASS),
        "failed": sum(1 for r in res if r.status == FAIL),
        "skipped": sum(1 for r in res if r.status == SKIP),
    }


def _evidence_line(e: dict) -> str:
    """``stream 3 10.0.0.1:40000 -> 10.0.0.2:80, frames 7, 9: text``"""
    frames = [x for x in e.get("frames") or [] if x]
    where = [e["connection"]] if e.get("connection") else []
    if frames:
        where.append("frame" + ("s " if len(frames) > 1 else " ") + ", ".join(str(x) for x in frames[:10]))
    text = e.get("text", "")
    return f"{', '.join(where)}: {text}" if where else text


# ---------------------------------------------------------------------------- text
_TAG = {PASS: "ok  ", FAIL: "FAIL", SKIP: "skip", ERROR: "ERR "}


def text_summary(files: list[FileResult], policy_source: str | None = None, verbose: bool = True) -> str:
    """The human summary: per file its verdict, each rule with measured value and limit, and the
    evidence of the failed ones; then the totals and the exit code.  Not ``verbose`` (``-q``):
    only the failures (failed rules with their evidence, unreadable files), nothing when
    every rule passed."""
    lines = []
    if policy_source and verbose:
        lines.append(f"policy: {policy_source}")
    for f in files:
        if not verbose and not f.error and not f.failures:
            continue
        s = f.summary or {}
        info = []
        if s.get("connections") is not None and not f.error:
            info.append(f"{s.get('connections')} connections")
        if s.get("packets") is not None and not f.error:
            info.append(f"{s.get('packets')} packets")
        nfail = len(f.failures)
        if f.error:
            head = "ERROR (unreadable)"
        elif nfail:
            head = f"FAIL ({nfail} of {len(f.results)} rules failed)"
        else:
            nskip = sum(1 for r in f.results if r.status == SKIP)
            head = (f"ok ({len(f.results) - nskip} rules passed" + (f", {nskip} skipped)" if nskip else ")")
                    if f.results else "ok (no rule applies)")
        lines.append(f"{f.file}: {head}" + (f", {', '.join(info)}" if info else ""))
        if f.error:
            lines.append(f"  ERR  read: {f.error}")
        for r in f.results:
            if r.status in (PASS, SKIP) and not verbose:
                continue
            lines.append(f"  {_TAG.get(r.status, r.status)} {r.id}: {r.message}")
            if r.status == FAIL:
                for e in r.evidence:
                    lines.append(f"         {_evidence_line(e)}")
    if not verbose:
        return "".join(line + "\n" for line in lines)
    t = totals(files)
    code = exit_code(files)
    lines.append(f"checked {t['files']} file(s): {t['files_failed']} failed, {t['files_passed']} passed, "
                 f"{t['files_unreadable']} unreadable; {t['failed']} of {t['rules']} rule check(s) failed"
                 + (f", {t['skipped']} skipped (nothing to measure)" if t["skipped"] else "") + f"; exit code {code}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- JSON
def check_document(files: list[FileResult], policy=None) -> dict:
    """What ``check --json`` prints: the same information as the summary, as data."""
    code = exit_code(files)
    return {
        "schema_version": CHECK_SCHEMA_VERSION,
        "tool": {"name": "tcpanalyze", "version": __version__, "command": "check"},
        "status": {0: "pass", 1: "fail", 3: "error"}.get(code, "error"),
        "exit_code": code,
        "policy": policy.to_dict() if policy is not None else None,
        "totals": totals(files),
        "files": [f.to_dict() for f in files],
    }


# ---------------------------------------------------------------------------- JUnit XML
# characters XML 1.0 cannot carry even escaped
_XML_BAD = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(s) -> str:
    return _XML_BAD.sub("\ufffd", "" if s is None else str(s))


def junit_tree(files: list[FileResult], policy_source: str | None = None) -> ET.ElementTree:
    t = totals(files)
    root = ET.Element("testsuites", {
        "name": "tcpanalyze check",
        "tests": str(t["rules"] + t["files_unreadable"]),
        "failures": str(t["failed"]),
        "errors": str(t["files_unreadable"]),
        "skipped": str(t["skipped"]),
        "time": f"{sum(f.time for f in files):.3f}",
    })
    for f in files:
        nerr = 1 if f.error else 0
        suite = ET.SubElement(root, "testsuite", {
            "name": _x(f.file),
            "tests": str(len(f.results) + nerr),
            "failures": str(sum(1 for r in f.results if r.status == FAIL)),
            "errors": str(nerr),
            "skipped": str(sum(1 for r in f.results if r.status == SKIP)),
            "time": f"{f.time:.3f}",
        })
        props = ET.SubElement(suite, "properties")
        if policy_source:
            ET.SubElement(props, "property", {"name": "policy", "value": _x(policy_source)})
        s = f.summary or {}
        for k in ("connections", "packets"):
            if s.get(k) is not None and not f.error:
                ET.SubElement(props, "property", {"name": k, "value": str(s[k])})
        if f.error:
            case = ET.SubElement(suite, "testcase", {"classname": _x(f.file), "name": "read", "file": _x(f.file),
                                                     "time": f"{f.time:.3f}"})
            err = ET.SubElement(case, "error", {"message": _x(f.error), "type": "unreadable input"})
            err.text = _x(f.error)
        for r in f.results:
            case = ET.SubElement(suite, "testcase", {"classname": _x(f.file), "name": _x(r.id), "file": _x(f.file),
                                                     "time": "0"})
            if r.status == FAIL:
                el = ET.SubElement(case, "failure", {"message": _x(r.message), "type": _x(r.rule)})
                body = [r.message, f"measured: {r.measured} {r.unit}".rstrip(), f"limit: {r.limit} {r.unit}".rstrip()]
                body += [_evidence_line(e) for e in r.evidence]
                el.text = _x("\n".join(body))
            elif r.status == SKIP:
                ET.SubElement(case, "skipped", {"message": _x(r.message)})
            elif r.status == ERROR:
                el = ET.SubElement(case, "error", {"message": _x(r.message), "type": _x(r.rule)})
                el.text = _x(r.message)
            else:
                out = ET.SubElement(case, "system-out")
                out.text = _x(r.message)
    if hasattr(ET, "indent"):
        ET.indent(root)
    return ET.ElementTree(root)


def write_junit(files: list[FileResult], fh, policy_source: str | None = None) -> None:
    """Write the JUnit XML document to the binary file ``fh`` (UTF-8, with declaration)."""
    junit_tree(files, policy_source).write(fh, encoding="utf-8", xml_declaration=True)
    fh.write(b"\n")


def junit_string(files: list[FileResult], policy_source: str | None = None) -> str:
    import io

    buf = io.BytesIO()
    write_junit(files, buf, policy_source)
    return buf.getvalue().decode("utf-8")


# ---------------------------------------------------------------------------- GitHub Actions
def escape_data(s: str) -> str:
    """Workflow-command message escaping (``%``, CR, LF), as actions/toolkit's ``escapeData``."""
    return str(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(s: str) -> str:
    """Workflow-command property escaping: also ``:`` and ``,`` (``escapeProperty``)."""
    return escape_data(s).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, file: str | None = None, title: str | None = None) -> str:
    props = []
    if file and file != "-":
        props.append(f"file={escape_property(file)}")
    if title:
        props.append(f"title={escape_property(title)}")
    return f"::{level}" + (" " + ",".join(props) if props else "") + "::" + escape_data(message)


def github_annotations(files: list[FileResult], max_evidence: int = 3) -> list[str]:
    """One ``::error`` per failed rule and per unreadable file."""
    out = []
    for f in files:
        if f.error:
            out.append(annotation("error", f.error, f.file, "tcpanalyze check: unreadable input"))
        for r in f.results:
            if r.status != FAIL:
                continue
            body = [r.message] + [_evidence_line(e) for e in r.evidence[:max_evidence]]
            out.append(annotation("error", "\n".join(body), f.file, f"tcpanalyze check: {r.id}"))
    return out


__all__ = ["text_summary", "check_document", "junit_tree", "write_junit", "junit_string", "github_annotations",
           "annotation", "escape_data", "escape_property", "totals"]
