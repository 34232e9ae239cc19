from __future__ import annotations

import pytest
import torch

from fer_core.models import ClassifierHead, ProjectionHead


@pytest.mark.parametrize("kind, dim, out", [("none", 8, 16), ("linear", 8, 8), ("dense", 4, 4)])
def test_projection_head_is_l2_normalised(kind, dim, out):
    z = ProjectionHead(16, kind=kind, dim=dim)(torch.randn(5, 16))
    assert z.shape == (5, out)
    assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)


def test_bad_projection_kind_is_named():
    with pytest.raises(ValueError, match="proj.head"):
        ProjectionHead(16, kind="mlp")


def test_classifier_head_shape():
    assert ClassifierHead(16, 7, dropout=0.1)(torch.randn(3, 16)).shape == (3, 7)
