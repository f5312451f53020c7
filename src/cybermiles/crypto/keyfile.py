"""Writing secret key files: private from the first byte, durable, never half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_secret_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as JSON to ``path`` with mode 0600: created private (``O_EXCL``),
    fsynced, then renamed into place; the parent directory is created with mode 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
