"""Captures named by URL (``s3://bucket/caps/a.pcap``, ``gcs://...``, ``file:///data/a.pcap``,
``memory://...``): opened through fsspec, the file-system layer Dask uses, imported only
when such a name is met.  Local paths never come here.

Credentials and options are fsspec's: s3fs reads ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_PROFILE`` / ``AWS_ENDPOINT_URL``, gcsfs
``GOOGLE_APPLICATION_CREDENTIALS``, and every protocol takes defaults from fsspec's
configuration (``FSSPEC_<PROTOCOL>_<KEY>`` environment variables or ``~/.config/fsspec``).
"""
from __future__ import annotations

import re

from ..errors import SourceError

__all__ = ["is_url", "open_url", "expand_url", "url_exists"]

# "scheme://" with an RFC 3986 scheme of two characters or more (so "C:/x" stays a path)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")
_MAGIC = frozenset("*?[")


def is_url(path) -> bool:
    """True when ``path`` is a string that starts with ``scheme://``."""
    return isinstance(path, str) and _URL.match(path) is not None


def _fsspec(url: str):
    try:
        import fsspec
    except ImportError:
        raise SourceError(f"cannot open {url}: reading URLs needs fsspec "
                          f"(pip install 'tcpanalyze[dask]', plus s3fs / gcsfs / ... for object stores)") from None
    return fsspec


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "No such file or directory"
    if isinstance(exc, IsADirectoryError):
        return "Is a directory"
    if isinstance(exc, PermissionError):
        return "Permission denied"
    text = getattr(exc, "strerror", None) or str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fs(url: str):
    """(file system, path inside it) for ``url``; SourceError when the protocol is unknown
    or its package is missing."""
    fsspec = _fsspec(url)
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:    # unknown protocol, or its implementation missing
        raise SourceError(f"cannot open {url}: {_reason(exc)}") from None


def open_url(url: str):
    """``(binary file object, size or None)`` for the capture at ``url``; raises SourceError
    (one line) when it cannot be opened.  The caller closes the file."""
    fs, path = _fs(url)
    try:
        if fs.isdir(path):
            raise SourceError(f"cannot open {url}: Is a directory")
        f = fs.open(path, "rb")
    except SourceError:
        raise
    except Exception as exc:    # any backend error (botocore, aiohttp, ...) becomes one line
        raise SourceError(f"cannot open {url}: {_reason(exc)}") from None
    size = getattr(f, "size", None)
    if not isinstance(size, int):
        try:
            size = int(fs.size(path))
        except Exception:
            size = None
    return f, size


def url_exists(url: str) -> bool:
    try:
        fs, path = _fs(url)
        return bool(fs.exists(path))
    except Exception:
        return False


def expand_url(url: str, suffixes: tuple[str, ...], sniff, skipped: dict[str, list[str]] | None = None) -> list[str]:
    """``url`` as capture inputs, like a local path in ``parallel.expand_inputs``: a directory
    gives its capture files (sorted, not recursive: a name ending in one of ``suffixes``, or
    ``sniff(url)`` true), a pattern with ``*?[`` its matching files (sorted), anything else
    itself (so a missing object is reported when it is opened).  Expanded names are full URLs
    in fsspec's form (``memory://caps/a.pcap`` lists as ``memory:///caps/a.pcap``)."""
    try:
        fs, path = _fs(url)
    except SourceError:
        return [url]
    full = fs.unstrip_protocol

    try:
        if any(c in _MAGIC for c in path) and not fs.exists(path):
            hits = sorted(p for p in fs.glob(path) if fs.isfile(p))
            return [full(p) for p in hits] if hits else [url]
        if fs.isdir(path):
            names, others = [], []
            for info in sorted(fs.ls(path, detail=True), key=lambda i: i["name"]):
                if info.get("type") != "file":
                    continue
                p = info["name"]
                u = full(p)
                base = p.rstrip("/").rsplit("/", 1)[-1]
                (names if base.lower().endswith(suffixes) or sniff(u) else others).append(u)
            if others and skipped is not None:
                skipped[url] = [u.rsplit("/", 1)[-1] for u in others]
            return names if names else [url]
    except Exception:
        return [url]
    return [url]
