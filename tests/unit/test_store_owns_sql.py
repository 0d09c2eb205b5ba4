"""The store owns its SQL: no SQL statement and no ``sqlite3`` import outside ``pipeline/store/``.

Every reader (API, CLI, report, benchmarks) and writer (replay, matcher, camera status) calls the
store's named functions, so the schema can change, and a PostgreSQL backend can plug in, in one
package. The check reads the code's string constants (f-strings joined, docstrings skipped: prose may
say "select") and its imports, and names file:line for each offence.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("pipeline", "workers", "benchmarks")
OWNER = ROOT / "pipeline" / "store"

# a string that opens with an SQL verb in capitals, or that holds a statement's shape in any case
_OPENS = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA|WITH\s+RECURSIVE|BEGIN|COMMIT|ROLLBACK)\b")
_SHAPE = re.compile(r"(?is)\bselect\b[^;]*?\bfrom\s+[\w\"(]|\binsert\s+into\s|\bupdate\s+\w+\s+set\s|\bdelete\s+from\s"
                    r"|\b(create|alter|drop)\s+(table|index|unique\s+index|trigger|view)\b|\bpragma\s+\w+\s*(=|\(|$)"
                    r"|\bwith\s+recursive\b|\bon\s+conflict\s*\(")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string literal; an f-string is one text with ``{}`` for its fields."""
    skip = _docstrings(tree)
    inside_f = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            out.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip | inside_f:
            out.append((node.lineno, node.value))
    return out


def sql_offences(source: str, name: str) -> list[str]:
    """``name:line: ...`` for each SQL string and each ``sqlite3`` import in ``source``."""
    tree = ast.parse(source)
    found = [f"{name}:{line}: SQL {text.strip()[:60]!r}" for line, text in _strings(tree)
             if _OPENS.search(text) or _SHAPE.search(text)]
    for node in ast.walk(tree):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [f"{name}:{node.lineno}: imports {m}" for m in modules if m.split(".")[0] == "sqlite3"]
    return found


def test_no_sql_outside_the_store_package():
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py")) if OWNER not in p.parents]
    assert len(files) > 50, "the scan found too few files to mean anything"
    offences = [o for p in files for o in sql_offences(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert not offences, "SQL belongs in pipeline/store/ (call a store function instead):\n" + "\n".join(offences)


def test_the_store_package_is_where_the_sql_is():
    """The scan recognises the store's own SQL: were it blind, the test above would pass vacuously."""
    hits = [o for p in sorted(OWNER.glob("*.py")) for o in sql_offences(p.read_text(encoding="utf-8"), p.name)]
    for module in ("tracks.py", "identities.py", "cameras.py", "calibration.py", "modality_events.py", "schema.py"):
        assert any(h.startswith(module + ":") for h in hits), f"no SQL recognised in pipeline/store/{module}"


def test_the_scan_catches_sql_in_every_form_and_spares_prose_and_redis():
    snippet = '''
import sqlite3
from sqlite3 import Row

def rows(conn, cols, where):
    """Select the tracks from one camera (prose in a docstring is not SQL)."""
    a = conn.execute("SELECT track_uid FROM tracks")
    b = conn.execute(f"SELECT {cols} FROM tracks{where} ORDER BY t_start")
    c = "insert into links (clip_id) values (?)"
    d = ("UPDATE identities "
         "SET merged_into = ? WHERE id = ?")
    e = "DELETE FROM merges"
    f = "CREATE TABLE extra (k TEXT)"
    g = "PRAGMA journal_mode"
    redis = client.execute_command("XGROUP CREATE", "stream", "group")
    help_text = "frames to skip from the start"
    return a, b, c, d, e, f, g
'''
    found = sql_offences(snippet, "bad.py")
    lines = sorted(int(o.split(":")[1]) for o in found)
    assert lines == [2, 3, 7, 8, 9, 10, 12, 13, 14], found
    assert all(o.startswith("bad.py:") for o in found)
