"""What the ``analyze --json`` schema says of a document: one line per error (path: message),
checked with the jsonschema package (a test dependency)."""
from __future__ import annotations

import jsonschema

from tcpanalyze.schema import JSON_SCHEMA


def schema_errors(doc, schema: dict | None = None) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema or JSON_SCHEMA)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '$'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
