"""data=faces: unlabelled face images for label-free stages (004 Sec. 4.2)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from fer_core.data import build_splits, dataset_kwargs
from fer_core.engine.build import compose

SMALL = dict(n_train=40, img_size=16)


def test_synthfer_draw_hides_labels_and_is_not_the_fer_draw():
    faces = build_splits("faces", **SMALL)
    fer = build_splits("synthfer", n_train=40, n_val=5, n_test=5, img_size=16)
    assert faces.train.images.shape == (40, 1, 16, 16)
    assert bool((faces.train.labels == -1).all())
    assert faces.train.votes is None and faces.train.true_labels is None
    assert not torch.equal(faces.train.images, fer.train.images[: len(faces.train)])
    again = build_splits("faces", **SMALL)
    assert (
        torch.equal(faces.train.images, again.train.images) and faces.data_hash == again.data_hash
    )
    other = build_splits("faces", draw=2, **SMALL)
    assert not torch.equal(faces.train.images, other.train.images)
    assert len(build_splits("faces", max_images=7, **SMALL).train) == 7


def test_folder_of_images_at_any_depth(tmp_path):
    for ident in ("0001", "0002"):  # a CASIA-WebFace tree: <root>/<identity>/<n>.jpg
        (tmp_path / ident).mkdir()
        for i in range(3):
            arr = (torch.rand(20, 24, 3) * 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(tmp_path / ident / f"{i:03d}.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    faces = build_splits("faces", root=str(tmp_path), img_size=16, channels=3)
    assert faces.train.images.shape == (6, 3, 16, 16) and bool((faces.train.labels == -1).all())
    assert len(build_splits("faces", root=str(tmp_path), img_size=16, max_images=4).train) == 4
    with pytest.raises(ValueError, match="data=faces: no image file"):
        build_splits("faces", root=str(_empty(tmp_path)), img_size=16)


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_config_group_takes_every_synthfer_key_and_its_own():
    keys = set(dataset_kwargs("faces"))
    assert set(dataset_kwargs("synthfer")) <= keys and {"root", "draw", "max_images"} <= keys
    cfg = compose(["data=faces", "data.n_train=64", "data.draw=3"])
    assert cfg.data.name == "faces" and cfg.data.n_train == 64 and cfg.data.root is None
    with pytest.raises(ValueError, match="data.max_images must be null or an integer >= 1"):
        build_splits("faces", max_images=0, **SMALL)
