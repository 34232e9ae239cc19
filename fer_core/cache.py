"""The on-disk cache every expensive artefact goes through (INTERFACES.md "Caches").

Layout: ``cache_root()/<kind>/<key>/...`` where ``kind`` names what is cached (``synthfer``,
``decoded``, ``splits``, ``pretrain``, ...) and ``key`` is :func:`config_hash` of whatever
produced it. An entry is built into a temporary sibling directory and renamed into place, so a
reader never sees a half-written entry; a per-entry file lock makes concurrent callers (Ray Tune
trials, pytest-xdist workers) build it once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

ENV_VAR = "FER_STUDY_CACHE"
_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def cache_root() -> Path:
    """``$FER_STUDY_CACHE`` (default ``~/.cache/fer-study``), made absolute.

    Absolute matters: Ray Tune changes the working directory of trials (PITFALLS.md).
    """
    raw = os.environ.get(ENV_VAR) or str(Path.home() / ".cache" / "fer-study")
    return Path(raw).expanduser().resolve()


def _canonical(obj: Any) -> Any:
    """JSON-able canonical form: dict keys sorted by json, tuples as lists, paths as strings."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj.is_integer():
        # 1 and 1.0 are the same knob value; hash them the same.
        return int(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _canonical(obj.item())
    raise TypeError(f"config_hash cannot hash a {type(obj).__name__}: {obj!r}")


def config_hash(obj: Any) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of ``obj``."""
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_name(what: str, value: str) -> None:
    if not value or not set(value) <= _KEY_CHARS or value in (".", ".."):
        raise ValueError(f"cache {what} must be a plain name of [A-Za-z0-9-_.], got {value!r}")


def entry_path(kind: str, key: str) -> Path:
    """Where the entry ``kind/key`` lives (whether or not it exists)."""
    _check_name("kind", kind)
    _check_name("key", key)
    return cache_root() / kind / key


def build_once(kind: str, key: str, builder: Callable[[Path], None]) -> Path:
    """Return ``cache_root()/kind/key``, calling ``builder(tmp_dir)`` first if it does not exist.

    ``builder`` fills an empty temporary directory; on success it is renamed into place
    atomically (same file system). If the builder raises, nothing is left behind and the error
    propagates. Concurrent callers in other processes wait on the lock and then find the entry.
    """
    final = entry_path(kind, key)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f".{key}.lock")):
        if final.is_dir():  # someone else built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=final.parent))
        try:
            builder(tmp)
            os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the entry is shared read-only
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
