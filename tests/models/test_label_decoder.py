"""The label-disambiguation decoder of 001 (class queries cross-attending to patch tokens)."""

from __future__ import annotations

import pytest
import torch

from fer_core.models.label_decoder import LabelDecoder


@pytest.mark.parametrize("self_attn", [False, True])
@pytest.mark.parametrize("dim", [None, 24])
def test_shapes(self_attn, dim):
    torch.manual_seed(0)
    dec = LabelDecoder(16, 7, dim=dim, layers=2, heads=4, self_attn=self_attn)
    out = dec(torch.randn(3, 10, 16))
    d = dim or 16
    assert out.logits.shape == (3, 7) and out.queries.shape == (3, 7, d)
    assert dec.query_embed.shape == (7, d)
    assert (dec.blocks[0].self_attn is not None) == self_attn
    assert len(dec.blocks) == 2


def test_logits_depend_on_tokens_and_gradients_reach_queries():
    torch.manual_seed(0)
    dec = LabelDecoder(8, 5, layers=1, heads=2)
    x = torch.randn(2, 6, 8)
    a = dec(x).logits
    assert not torch.allclose(a[0], a[1])
    a.sum().backward()
    assert dec.query_embed.grad is not None and dec.query_embed.grad.abs().sum() > 0


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    dec = LabelDecoder(8, 4, layers=1, heads=2)
    x = torch.randn(16, 5, 8)
    y = torch.arange(16) % 4
    x[torch.arange(16), 0, :4] += 3 * torch.nn.functional.one_hot(y, 4).float()  # separable cue
    opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(dec(x).logits, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="decoder.dim"):
        LabelDecoder(10, 7, heads=4)  # 10 not divisible by 4
    with pytest.raises(ValueError, match="decoder.layers"):
        LabelDecoder(16, 7, layers=0)
    with pytest.raises(ValueError, match="decoder.heads"):
        LabelDecoder(16, 7, heads=0)
