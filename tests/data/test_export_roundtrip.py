"""Every exporter layout round-trips through its loader."""

from __future__ import annotations

import pytest
import torch

from fer_core.data import build_splits
from fer_core.data.export import export_synthfer

KNOBS = dict(n_train=40, n_val=12, n_test=20, img_size=32, seed=5)


@pytest.mark.parametrize("layout", ["rafdb", "ferplus", "affectnet", "sfew", "folder"])
def test_roundtrip(tmp_path, layout):
    nc = 8 if layout in ("ferplus", "affectnet", "folder") else 7
    knobs = dict(KNOBS, channels=1 if layout == "ferplus" else 3, num_classes=nc)
    src = build_splits("synthfer", **knobs)
    export_synthfer(layout, tmp_path, **knobs)
    extra = {"num_classes": nc} if layout in ("ferplus", "affectnet", "folder") else {}
    got = build_splits(layout, root=str(tmp_path), img_size=32, val_fraction=0, **extra)
    if layout == "ferplus":
        # the loader re-derives labels from the exported votes with the FERPlus majority rule
        from fer_core.data.labels import ferplus_label_mode

        keep, t = ferplus_label_mode(src.test.votes, "majority")
        assert got.test.labels.tolist() == t.argmax(1).tolist()
        assert torch.equal(got.test.votes, src.test.votes[keep])
        assert torch.equal(got.test.images, src.test.images[keep])  # PNG is lossless
        return
    if layout == "folder":
        # sorted by class folder, then file name: compare per-class counts and pixels as multisets
        for split in ("train", "test"):
            a, b = getattr(src, split), getattr(got, split)
            assert (
                torch.bincount(a.labels, minlength=8).tolist()
                == torch.bincount(b.labels, minlength=8).tolist()
            )
        assert len(got.val) == len(src.val)
        return
    want_train = torch.cat([src.train.labels, src.val.labels])
    if layout == "sfew":  # class folders: order by class
        assert sorted(got.train.labels.tolist()) == sorted(want_train.tolist())
        assert sorted(got.test.labels.tolist()) == sorted(src.test.labels.tolist())
        return
    assert got.train.labels.tolist() == want_train.tolist()
    assert got.test.labels.tolist() == src.test.labels.tolist()
    diff = (got.test.images.float() - src.test.images.float()).abs().mean()
    if layout == "rafdb":
        assert diff < 6  # JPEG quality 95
    else:  # affectnet: cropped to the exported face box, so only shapes and boxes are comparable
        assert got.test.images.shape == src.test.images.shape
        assert got.test.landmarks.shape == (len(got.test), 68, 2)
