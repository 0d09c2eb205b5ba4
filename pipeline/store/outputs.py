"""The report files a replay leaves beside the store, cleaned of erased tracks and identities.

A replay writes ``tracks.jsonl``, ``identities.json`` and one contact sheet per identity
(``identities/<id>.png``: the person's crops) into the store's folder (``pipeline/replay/report.py``).
Erasure and retention must reach them too: the sheets of erased identities, and of identities that
lost a track, are deleted (the dashboard draws sheets from the store, so nothing is lost); the JSON
files lose the erased entries. Every rewrite goes through a temporary file and a rename.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPORT = "identities.json"
SHEETS = "identities"
TRACKS = "tracks.jsonl"


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def scrub_outputs(folder: str | Path, track_uids: Collection[str], track_nos: Collection[int],
                  identities: Collection[int], changed: Collection[int]) -> int:
    """Remove erased tracks (uids, matcher numbers) and identities from the report files in ``folder``.

    Args:
        identities: identities that no longer exist (their entry and sheet go).
        changed: surviving identities that lost tracks (their sheet goes; their entry loses the tracks).

    Returns:
        How many files were deleted or rewritten.
    """
    root = Path(folder)
    n = 0
    for ident in {*identities, *changed}:
        sheet = root / SHEETS / f"{int(ident)}.png"
        if sheet.is_file():
            sheet.unlink()
            n += 1
    uids, nos, gone, touched = set(track_uids), set(track_nos), set(identities), set(changed)
    tracks = root / TRACKS
    if uids and tracks.is_file():
        lines = tracks.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [ln for ln in lines if not _names_track(ln, uids)]
        if len(kept) != len(lines):
            _replace(tracks, "".join(kept))
            n += 1
    report = root / REPORT
    if report.is_file() and (uids or gone or touched):
        try:
            doc = json.loads(report.read_text(encoding="utf-8"))
        except ValueError as e:   # not ours to repair: say so, and leave it for the operator to delete
            log.error("%s is not JSON (%s): it may still name erased tracks", report, e)
            return n
        if _scrub_report(doc, uids, nos, gone, touched):
            _replace(report, json.dumps(doc, indent=1) + "\n")
            n += 1
    return n


def _names_track(line: str, uids: set[str]) -> bool:
    try:
        return json.loads(line).get("track_uid") in uids
    except (ValueError, AttributeError):
        return False


def _scrub_report(doc: Any, uids: set[str], nos: set[int], gone: set[int], touched: set[int]) -> bool:
    entries = doc.get("identities") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return False
    kept, changed = [], False
    for entry in entries:
        if entry.get("identity") in gone:
            changed = True
            continue
        for per_modality in entry.get("cameras", {}).values():
            for modality, tracks in list(per_modality.items()):
                left = [t for t in tracks if t.get("track_uid") not in uids]
                for t in left:
                    for link in t.get("links", []):
                        if link.get("matched_track") in nos:
                            link["matched_track"] = None
                changed |= len(left) != len(tracks)
                per_modality[modality] = left
        for m in entry.get("merges", []):
            if m.get("evidence_track") in nos:
                m["evidence_track"] = 0
                changed = True
        if entry.get("identity") in touched:
            changed |= entry.get("contact_sheet") is not None
            entry["contact_sheet"] = None
            entry["n_tracks"] = sum(len(ts) for pm in entry.get("cameras", {}).values() for ts in pm.values())
        kept.append(entry)
    doc["identities"] = kept
    doc["n_identities"] = len(kept)
    doc["n_tracks"] = sum(int(e.get("n_tracks", 0)) for e in kept)
    return changed
