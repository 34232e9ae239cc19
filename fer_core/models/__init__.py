"""Models: timm backbones with feature views, heads, and the papers' decoders."""

from __future__ import annotations

from fer_core.models.backbones import (
    BACKBONES,
    Backbone,
    BackboneFeatures,
    create_backbone,
    list_backbones,
)
from fer_core.models.heads import ClassifierHead, ProjectionHead

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneFeatures",
    "ClassifierHead",
    "ProjectionHead",
    "create_backbone",
    "list_backbones",
]
