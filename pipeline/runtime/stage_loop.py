"""How a bus-consuming stage is driven: ``drain`` in embedded mode, ``run`` in a worker.

Each stage defines ``poll`` (one non-blocking step, returning how many entries it read) and
``step`` (one possibly blocking step); the loops around them are the same for every stage.
"""

from __future__ import annotations

import threading


class StageLoop:
    """Mixin giving a stage with ``poll()`` and ``step()`` its ``drain`` and ``run`` loops."""

    def drain(self) -> int:
        """Embedded mode: consume every entry left on the bus; returns how many were read."""
        total = 0
        while n := self.poll():
            total += n
        return total

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set; the batch in hand is always finished (SIGTERM-friendly)."""
        while not stop.is_set():
            self.step()
