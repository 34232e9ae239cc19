"""fer_core.cache: hashing, build-once, atomicity, concurrency."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fer_core.cache import build_once, cache_root, config_hash


def test_cache_root_is_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FER_STUDY_CACHE", "rel/cache")
    assert cache_root() == (tmp_path / "rel" / "cache").resolve()
    monkeypatch.delenv("FER_STUDY_CACHE")
    assert cache_root() == (Path.home() / ".cache" / "fer-study").resolve()


def test_config_hash_is_canonical():
    a = config_hash({"b": 1, "a": [1, 2], "p": Path("/x")})
    assert a == config_hash({"a": (1, 2), "p": "/x", "b": 1.0})
    assert len(a) == 16 and a != config_hash({"b": 2, "a": [1, 2], "p": "/x"})
    with pytest.raises(TypeError):
        config_hash({"x": object()})


def test_build_once_builds_once(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_STUDY_CACHE", str(tmp_path))
    calls = []

    def builder(d: Path) -> None:
        calls.append(d)
        (d / "x.txt").write_text("ok")

    p1 = build_once("thing", "k1", builder)
    p2 = build_once("thing", "k1", builder)
    assert p1 == p2 == tmp_path / "thing" / "k1" and (p1 / "x.txt").read_text() == "ok"
    assert len(calls) == 1 and not calls[0].exists()  # the temporary dir was renamed


def test_failed_build_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_STUDY_CACHE", str(tmp_path))

    def bad(d: Path) -> None:
        (d / "half.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build_once("thing", "k2", bad)
    assert [p.name for p in (tmp_path / "thing").iterdir() if not p.name.endswith(".lock")] == []
    with pytest.raises(ValueError, match="plain name"):
        build_once("thing", "../up", bad)


def test_concurrent_callers_build_once(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_STUDY_CACHE", str(tmp_path))
    calls = []

    def slow(d: Path) -> None:
        calls.append(1)
        time.sleep(0.2)
        (d / "done").write_text("1")

    threads = [threading.Thread(target=build_once, args=("thing", "k3", slow)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and (tmp_path / "thing" / "k3" / "done").exists()
