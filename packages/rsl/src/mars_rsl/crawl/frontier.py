"""The crawl's persistent frontier: what is done, missing or failed, kept beside the downloads.

Why: a crawl of thousands of multi-GB products is killed, loses its network or is rerun
with a wider selection. The frontier (``DIR/.rsl-crawl.json``) records each product's
state and size as soon as it changes (written to a temporary name and renamed, so a kill
never leaves it half-written); a rerun skips the products recorded as complete whose
files still have the recorded size, and resumes the ``.part`` files of the others.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from mars_core.errors import MarsError

FRONTIER_NAME = ".rsl-crawl.json"


class Frontier:
    """Thread-safe product-id → record store, persisted atomically after every change."""

    def __init__(self, out_dir: Path, archive: str) -> None:
        self.path = out_dir / FRONTIER_NAME
        self.lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.records = dict(data.get("products", {}))
            except (OSError, ValueError) as exc:
                raise MarsError(f"crawl frontier {self.path} is unreadable ({exc}); "
                                "move it away to start afresh") from None
        self.archive = archive

    def get(self, pid: str) -> dict[str, Any] | None:
        with self.lock:
            rec = self.records.get(pid)
            return dict(rec) if rec else None

    def set(self, pid: str, **record: Any) -> None:
        with self.lock:
            self.records[pid] = record
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"archive": self.archive, "products": self.records}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
