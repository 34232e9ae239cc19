"""The broken study fixtures (tests/study/broken/*.yaml) each fail with the expected message.

Each fixture states what it expects in its leading comments::

    # expect: <text the errors must contain>      (any number)
    # expect-key: <key path of one error>
    # expect-line: <line of that error>
    # expect-count: <exact number of errors>
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_core.study import StudyValidationError, load_study, validate_files

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))


def _expectations(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, sep, value = line[2:].partition(": ")
        if sep:
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_every_required_case_has_a_fixture():
    names = {p.stem for p in BROKEN}
    for case in (
        "unknown_key",
        "bad_bounds",
        "missing_space",
        "unknown_knob",
        "negative_resources",
    ):
        assert case in names


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_fixture_fails_as_expected(path: Path):
    exp = _expectations(path)
    assert exp.get("expect"), f"{path.name} states no '# expect:' line"
    errors = validate_files([path])
    text = "\n".join(str(e) for e in errors)
    assert errors, f"{path.name} validated but should fail"
    for want in exp["expect"]:
        assert want in text, f"{want!r} not in:\n{text}"
    for key in exp.get("expect-key", []):
        matching = [e for e in errors if e.key == key]
        assert matching, f"no error at key {key!r}:\n{text}"
        for line in exp.get("expect-line", []):
            assert any(e.line == int(line) for e in matching), text
    for count in exp.get("expect-count", []):
        assert len(errors) == int(count), text
    assert all(e.file == str(path) for e in errors)
    # load_study raises the same problems as one ValueError
    with pytest.raises(ValueError) as info:
        load_study(path)
    assert isinstance(info.value, StudyValidationError)
    assert exp["expect"][0] in str(info.value)
