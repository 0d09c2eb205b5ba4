"""Output folders of the commands (``--out``): created and proven writable before any slow work.

An unwritable ``--out`` (``/sys/x``, a path that is a file or lies under one, a read-only mount)
must be one line and exit 2 at the start, not a traceback after minutes of decoding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from models.errors import ConfigError


def prepare_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` (and its parents) and check that a file can be written in it.

    Raises:
        ConfigError: naming the flag, the path and the system's reason.
    """
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # mkdir succeeds on a read-only mount that already has it
            pass
    except (OSError, ValueError) as e:  # ValueError: an embedded NUL byte
        reason = getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"{flag} {str(path)!r}: cannot write an output folder there ({reason})") from None
    return out
