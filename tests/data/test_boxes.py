"""Face boxes: annotated, full, detector."""

from __future__ import annotations

import pytest
import torch

from fer_core.data import build_splits
from fer_core.data.boxes import face_boxes


def test_box_sources():
    s = build_splits("synthfer", n_train=8, n_val=4, n_test=4, img_size=64, channels=3, seed=9)
    ann = face_boxes(s.train, "annotated")
    assert torch.equal(ann, s.train.boxes)
    assert face_boxes(s.train, "full")[0].tolist() == [0, 0, 64, 64]
    det = face_boxes(s.train, "detector")
    assert det.shape == (8, 4) and (det[:, 2] > det[:, 0]).all() and det.max() <= 64
    with pytest.raises(ValueError, match="boxes.source"):
        face_boxes(s.train, "yolo")
