"""Real-format loaders on small hand-written fixtures (written from each format's own
documentation, not by our exporter) and on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fer_core.data._io as data_io
from fer_core.data import build_splits


def img(path: Path, value: int, size: tuple[int, int] = (20, 20), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode).save(path)


# ---------------------------------------------------------------- RAF-DB
def rafdb_tree(root: Path, lines: list[str]) -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for i, line in enumerate(lines):
        stem = line.split()[0].rsplit(".", 1)[0]
        img(root / "Image" / "aligned" / f"{stem}_aligned.jpg", 10 * i, (100, 100))
    return root


def test_rafdb_fixture(tmp_path):
    # RAF-DB readme: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral
    lines = [f"train_{i:05d}.jpg {lab}" for i, lab in enumerate([1, 2, 3, 4, 5, 6, 7, 7], 1)]
    lines += ["test_0001.jpg 4", "test_0002.jpg 7"]
    root = rafdb_tree(tmp_path / "raf", lines)
    s = build_splits("rafdb", root=str(root), img_size=32, val_fraction=0)
    assert s.num_classes == 7 and len(s.train) == 8 and len(s.test) == 2
    assert s.train.labels.tolist() == [2, 6, 5, 1, 3, 4, 0, 0]
    assert s.test.labels.tolist() == [1, 0]
    assert s.train.images.shape == (8, 3, 32, 32)
    assert s.train.boxes[0].tolist() == [0, 0, 32, 32]


def test_rafdb_bad_label_names_the_line(tmp_path):
    root = rafdb_tree(tmp_path / "raf", ["train_00001.jpg 3", "train_00002.jpg 9"])
    with pytest.raises(ValueError, match=r"list_patition_label.txt:2.*'9'"):
        build_splits("rafdb", root=str(root))


def test_missing_root_names_the_layout(tmp_path):
    with pytest.raises(ValueError, match="Image/aligned"):
        build_splits("rafdb", root=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="data.root is not set"):
        build_splits("ferplus")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="list_patition_label.txt"):
        build_splits("rafdb", root=str(tmp_path / "empty"))


def test_unreadable_image_named_or_skipped(tmp_path, monkeypatch):
    lines = ["train_00001.jpg 1", "train_00002.jpg 4", "train_00003.jpg 4", "test_0001.jpg 7"]
    root = rafdb_tree(tmp_path / "raf", lines)
    (root / "Image" / "aligned" / "train_00002_aligned.jpg").write_bytes(b"not a jpeg")
    (root / "Image" / "aligned" / "train_00003_aligned.jpg").unlink()
    with pytest.raises(ValueError, match=r"train_00002_aligned.jpg: unreadable") as err:
        build_splits("rafdb", root=str(root), val_fraction=0)
    assert "train_00003_aligned.jpg: missing" in str(err.value)
    s = build_splits("rafdb", root=str(root), val_fraction=0, on_corrupt="skip")
    assert len(s.train) == 1 and s.train.meta["skipped"] == {"train": 2, "test": 0}
    # decoded once: a second call reads the cache, it does not decode again
    monkeypatch.setattr(data_io, "decode_records", lambda *a, **k: pytest.fail("decoded twice"))
    s2 = build_splits("rafdb", root=str(root), val_fraction=0, on_corrupt="skip")
    assert torch.equal(s.train.images, s2.train.images)


# ---------------------------------------------------------------- FERPlus
FERPLUS_CSV = """Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF
Training,fer0000000.png,4,0,0,1,3,2,0,0,0,0
Training,fer0000001.png,6,0,0,1,0,0,0,0,3,0
Training,,0,0,0,0,0,0,0,0,0,10
Training,fer0000003.png,0,10,0,0,0,0,0,0,0,0
Training,fer0000004.png,0,0,0,0,0,0,0,0,0,10
PublicTest,fer0000005.png,0,0,8,0,0,0,2,0,0,0
PrivateTest,fer0000006.png,0,0,0,0,0,0,0,9,1,0
PrivateTest,fer0000007.png,2,0,0,7,0,0,0,0,1,0
"""
FER_DIRS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}


def ferplus_tree(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "fer2013new.csv").write_text(FERPLUS_CSV)
    for i, line in enumerate(FERPLUS_CSV.splitlines()[1:]):
        usage, name = line.split(",")[:2]
        if name:
            img(root / FER_DIRS[usage] / name, 20 * i, (48, 48), "L")
    return root


def test_ferplus_fixture_modes(tmp_path):
    root = ferplus_tree(tmp_path / "ferplus")
    s = build_splits("ferplus", root=str(root))
    assert s.val_is_official and s.num_classes == 8
    # majority: row 0 (4 of 9 after dropping single votes) and the NF row are dropped
    assert s.train.labels.tolist() == [0, 1] and len(s.val) == 1 and s.val.labels.tolist() == [2]
    assert s.test.labels.tolist() == [7, 3]
    assert s.train.votes[0].tolist() == [6, 0, 0, 1, 0, 0, 0, 0, 3, 0]
    assert s.train.targets is None
    p = build_splits("ferplus", root=str(root), label_mode="probability")
    assert len(p.train) == 3 and torch.allclose(
        p.train.targets[0, [0, 4]], torch.tensor([4 / 7, 3 / 7])
    )
    assert p.train[0]["target"].shape == (8,)
    assert p.train.meta["label_mode"] == "probability"  # the method trains it as the reference
    assert s.train.meta["label_mode"] == "majority"
    assert len(p.test) == 2  # val / test always use majority, as the reference code evaluates
    s7 = build_splits("ferplus", root=str(root), num_classes=7)
    assert s7.test.labels.tolist() == [3]  # the contempt row is dropped


def test_ferplus_label_csv_variant(tmp_path):
    root = ferplus_tree(tmp_path / "ferplus")
    rows = [line.split(",") for line in FERPLUS_CSV.splitlines()[1:]]
    for usage, d in FER_DIRS.items():
        text = "".join(
            f'{r[1]},"(0, 0, 48, 48)",{",".join(r[2:])}\n' for r in rows if r[0] == usage and r[1]
        )
        (root / d / "label.csv").write_text(text)
    (root / "fer2013new.csv").unlink()
    s = build_splits("ferplus", root=str(root), img_size=24)
    assert s.train.labels.tolist() == [0, 1] and s.test.labels.tolist() == [7, 3]
    assert s.train.boxes[0].tolist() == [0, 0, 24, 24]


def test_ferplus_bad_rows(tmp_path):
    root = ferplus_tree(tmp_path / "ferplus")
    (root / "fer2013new.csv").write_text(
        FERPLUS_CSV.replace("Training,fer0000003.png,0,10,", "Training,fer0000003.png,0,x,")
    )
    with pytest.raises(ValueError, match="row 5.*numbers"):
        build_splits("ferplus", root=str(root))
    (root / "fer2013new.csv").write_text(
        FERPLUS_CSV + "Training,../escape.png,0,10,0,0,0,0,0,0,0,0\n"
    )
    with pytest.raises(ValueError, match="escapes the dataset root"):
        build_splits("ferplus", root=str(root))


# ---------------------------------------------------------------- AffectNet
def lm(x, y, w, h):
    return ";".join(f"{x + w * (i % 17) / 16:.2f};{y + h * (i // 17) / 4:.2f}" for i in range(68))


def affectnet_tree(root: Path, header: bool = True, extra: str = "") -> Path:
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    head = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"
    # AffectNet paper: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt, 8 None, 9 Uncertain, 10 No-Face
    train = [("689/a.jpg", 3), ("689/b.jpg", 6), ("12/c.jpg", 7), ("12/d.jpg", 8), ("12/e.jpg", 10)]
    val = [("1/v.jpg", 1), ("1/w.jpg", 4)]
    for fname, rows in (("training.csv", train), ("validation.csv", val)):
        text = head if header else ""
        for path, e in rows:
            text += f"{path},10,20,40,40,{lm(10, 20, 40, 40)},{e},0.1,-0.2\n"
            img(root / "Manually_Annotated_Images" / path, 100, (80, 80))
        (lists / fname).write_text(text + (extra if fname == "training.csv" else ""))
    return root


@pytest.mark.parametrize("header", [True, False])
def test_affectnet_fixture(tmp_path, header):
    root = affectnet_tree(tmp_path / "an", header=header)
    s = build_splits("affectnet", root=str(root), img_size=40, val_fraction=0)
    assert s.train.labels.tolist() == [2, 4, 7]  # None / No-Face dropped
    assert s.test.labels.tolist() == [1, 6]
    assert s.train.boxes[0].tolist() == [0, 0, 40, 40]  # cropped to the face box
    assert s.train.landmarks.shape == (3, 68, 2) and torch.allclose(
        s.train.landmarks[0, 0], torch.tensor([0.0, 0.0])
    )
    s7 = build_splits(
        "affectnet", root=str(root), img_size=40, num_classes=7, crop=False, val_fraction=0
    )
    assert s7.train.labels.tolist() == [2, 4]
    assert torch.allclose(
        s7.train.boxes[0], torch.tensor([5.0, 10.0, 25.0, 30.0])
    )  # 80 px -> 40 px


@pytest.mark.parametrize(
    "extra,match",
    [
        (f"/etc/x.jpg,1,1,5,5,{lm(1, 1, 5, 5)},1,0,0\n", "absolute"),
        (f"../x.jpg,1,1,5,5,{lm(1, 1, 5, 5)},1,0,0\n", "escapes"),
        (f"1/x.jpg,1,1,5,5,{lm(1, 1, 5, 5)},12,0,0\n", r"row 7: expression 12"),
        ("1/x.jpg,1,1,5,5,1;2,1,0,0\n", "136 numbers"),
        ("1/x.jpg,1,1,5\n", "expected 9 columns"),
    ],
)
def test_affectnet_bad_rows(tmp_path, extra, match):
    root = affectnet_tree(tmp_path / "an", extra=extra)
    with pytest.raises(ValueError, match=match):
        build_splits("affectnet", root=str(root))


# ---------------------------------------------------------------- SFEW, folder
def test_sfew_fixture(tmp_path):
    root = tmp_path / "sfew"
    for split, d in (("Train", "Train_Aligned_Faces"), ("Val", "Val_Aligned_Faces")):
        for emo in ("Angry", "Happy", "Neutral"):
            for k in range(2):
                img(root / split / d / emo / f"{emo}_{k}.png", 50)
    s = build_splits("sfew", root=str(root), img_size=16, val_fraction=0)
    assert sorted(s.train.labels.tolist()) == [0, 0, 1, 1, 4, 4]
    assert len(s.test) == 6 and s.test.images.shape[1:] == (3, 16, 16)
    (root / "Train" / "Train_Aligned_Faces" / "Bored").mkdir()
    with pytest.raises(ValueError, match="Bored"):
        build_splits("sfew", root=str(root), img_size=16)


def test_folder_fixture(tmp_path):
    root = tmp_path / "f"
    for split in ("train", "test"):
        for cls in ("happy", "Sadness", "contempt"):
            img(root / split / cls / "x.png", 80)
    s = build_splits(
        "folder", root=str(root), num_classes=8, img_size=16, channels=1, val_fraction=0
    )
    assert s.train.labels.tolist() == [
        3,
        7,
        1,
    ]  # folder names sorted: Sadness, contempt, happy and s.train.images.shape == (3, 1, 16, 16)
    with pytest.raises(ValueError, match="contempt.*num_classes=7"):
        build_splits("folder", root=str(root), num_classes=7)
