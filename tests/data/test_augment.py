"""Named augmentation policies (fer_core/data/augment.py, conf/aug/*.yaml)."""

from __future__ import annotations

import pytest
import torch
import yaml
from torchvision.transforms.v2 import functional as TF

from fer_core.data import augment_ops as A
from fer_core.data import build_splits
from fer_core.data.augment import AUG_DIR, list_policies, load_policy, parse_policy
from fer_core.data.transforms import normalize, random_crop_flip

SHAPES = [(1, 48), (3, 32)]
GEOMETRIC = ["crop_flip", "weak", "strong", "simclr", "erase"]


def _batch(c: int, px: int, n: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, px, px), generator=g, dtype=torch.uint8)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shipped_policies_are_safe_yaml():
    assert set(list_policies()) >= {"none", "crop_flip", "weak", "strong", "simclr", "erase"}
    for name in list_policies():
        text = (AUG_DIR / f"{name}.yaml").read_text()
        assert "!!" not in text and isinstance(yaml.safe_load(text)["ops"], list)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list_policies())
def test_policy_runs(name, shape):
    c, px = shape
    x = _batch(c, px)
    boxes = torch.tensor([px * 0.2, px * 0.25, px * 0.8, px * 0.9]).repeat(len(x), 1)
    out, b = load_policy(name)(x, _g(0), boxes)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert b.shape == (len(x), 4) and b.dtype == torch.float32
    assert (b >= 0).all() and (b <= px).all() and (b[:, 2:] >= b[:, :2]).all()


@pytest.mark.parametrize("name", list_policies())
def test_repeatable_and_views(name):
    policy, x = load_policy(name), _batch(3, 32)
    a, b = policy(x, _g(1))[0], policy(x, _g(1))[0]
    assert torch.equal(a, b)  # same generator state -> bit-identical
    g = _g(1)
    v1, v2 = policy(x, g)[0], policy(x, g)[0]  # two views, the generator advancing
    other = policy(x, _g(2))[0]
    if name == "none":
        assert not policy.random and torch.equal(v1, v2) and torch.equal(a, normalize(x))
    else:
        assert policy.random and not torch.equal(a, other)
        differs = (v1 != v2).flatten(1).any(1).float().mean()
        assert differs >= 0.9, f"{name}: only {differs:.0%} of samples differ between two views"


def test_crop_flip_reproduces_random_crop_flip():
    x = _batch(1, 48, n=64)
    boxes = torch.rand(64, 4) * 24 + torch.tensor([0.0, 0.0, 24.0, 24.0])
    out, b = load_policy("crop_flip")(x, _g(5), boxes)
    ref, rb = random_crop_flip(x, _g(5), pad=4, flip=True, boxes=boxes)
    assert torch.equal(out, normalize(ref)) and torch.equal(b, rb)


@pytest.fixture(scope="module")
def synthfer():
    return build_splits("synthfer", n_train=64, n_val=16, n_test=16, img_size=48).train


@pytest.mark.parametrize("name", GEOMETRIC)
def test_boxes_follow_the_face(name, synthfer):
    """Warp a mask that is 1 inside each face box through the same draws (``warp_only``): the
    moved box encloses the warped mask and is tight around it (not under ``strong``: after two
    rotations / shears in a row the box is the bounding box of a bounding box, so looser)."""
    images, boxes = synthfer.images, synthfer.boxes.float()
    n, _, h, w = images.shape
    policy = load_policy(name)
    for seed in range(3):
        _, out_boxes = policy(images, _g(seed), boxes)
        cy, cx = torch.arange(h).view(1, h, 1) + 0.5, torch.arange(w).view(1, 1, w) + 0.5
        inside = (cx >= boxes[:, 0, None, None]) & (cx < boxes[:, 2, None, None])
        inside = inside & (cy >= boxes[:, 1, None, None]) & (cy < boxes[:, 3, None, None])
        mask = (inside[:, None] * 255).to(torch.uint8)
        warped = policy(mask, _g(seed), warp_only=True)[0][:, 0] > 0  # [N, H, W] support
        b = out_boxes[:, :, None, None]
        enclosed = (cx >= b[:, 0] - 1) & (cx <= b[:, 2] + 1) & (cy >= b[:, 1] - 1) & (cy <= b[:, 3] + 1)  # fmt: skip
        frac = (warped & enclosed).sum() / warped.sum().clamp(min=1)
        assert frac >= 0.995, f"{name} seed {seed}: {frac:.4f} of the warped face outside its box"
        for i in range(
            n if name != "strong" else 0
        ):  # tight: the box is the support's bounding box, within 2 px
            ys, xs = warped[i].nonzero(as_tuple=True)
            if len(xs) >= 4:
                support = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
                assert (out_boxes[i] - support).abs().max() <= 2.5, (name, seed, i)


@pytest.mark.parametrize("name", ["crop_flip", "weak"])
def test_warp_only_equals_full_call_for_geometric_policies(name):
    x = _batch(1, 48)
    assert torch.equal(load_policy(name)(x, _g(3))[0], load_policy(name)(x, _g(3), warp_only=True)[0])  # fmt: skip


def test_photometric_ops_leave_boxes_alone():
    spec = {"ops": [{"op": "color_jitter", "p": 1.0}, {"op": "grayscale", "p": 1.0},
                    {"op": "gaussian_blur", "p": 1.0}, {"op": "random_erasing", "p": 1.0}]}  # fmt: skip
    boxes = torch.tensor([[3.0, 4.0, 20.0, 30.0]]).repeat(16, 1)
    out, b = parse_policy(spec, "photo")(_batch(3, 32), _g(0), boxes)
    assert torch.equal(b, boxes)


def test_one_channel_colour_ops():
    """1 channel: saturation, hue and grayscale are no-ops; brightness and contrast still act."""
    x = _batch(1, 48)
    for op in ({"op": "color_jitter", "brightness": 0, "contrast": 0, "saturation": 0.9, "hue": 0.5, "p": 1.0},
               {"op": "grayscale", "p": 1.0}):  # fmt: skip
        assert torch.equal(parse_policy({"ops": [op]}, "t")(x, _g(0))[0], normalize(x))
    for key in ("brightness", "contrast"):
        op = {"op": "color_jitter", "brightness": 0, "contrast": 0, "saturation": 0, "hue": 0, "p": 1.0}  # fmt: skip
        assert not torch.equal(parse_policy({"ops": [{**op, key: 0.4}]}, "t")(x, _g(0))[0], normalize(x))  # fmt: skip
    rgb = parse_policy({"ops": [{"op": "grayscale", "p": 1.0}]}, "t")(_batch(3, 32), _g(0))[0]
    assert torch.allclose(rgb[:, 0], rgb[:, 1]) and torch.allclose(rgb[:, 1], rgb[:, 2])


def test_colour_formulas_match_torchvision():
    x = _batch(3, 32, n=8)
    xf, ones = x.float(), torch.ones(8)
    for f in (0.5, 1.7):
        assert torch.allclose(A._saturation(xf, ones * f), TF.adjust_saturation(xf / 255, f) * 255, atol=1e-3)  # fmt: skip
        assert torch.allclose(A._contrast(xf, ones * f), TF.adjust_contrast(xf / 255, f) * 255, atol=1e-3)  # fmt: skip
        assert torch.allclose(A._brightness(xf.clone(), ones * f), TF.adjust_brightness(xf / 255, f) * 255, atol=1e-3)  # fmt: skip
        assert (A._sharpness(xf, ones * f) - TF.adjust_sharpness(x, f).float()).abs().max() <= 1.5  # uint8 rounding in torchvision  # fmt: skip
    for shift in (-0.3, 0.1, 0.45):
        assert torch.allclose(A._hue(xf, ones * shift), TF.adjust_hue(xf / 255, shift) * 255, atol=1e-2)  # fmt: skip
    assert torch.equal(A._equalize(xf), TF.equalize(x).float())
    assert (A._autocontrast(xf) - TF.autocontrast(x).float()).abs().max() <= 1.0  # uint8 rounding


def test_unknown_policy_name():
    with pytest.raises(ValueError, match=r"unknown augmentation policy 'stronk' \(did you mean 'strong'\?\); allowed: .*crop_flip.*weak"):  # fmt: skip
        load_policy("stronk")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"ops": [{"op": "hflop"}]},
            r"src: ops\[0\]: unknown op 'hflop' \(did you mean 'hflip'\?\); allowed: .*rand_augment",
        ),  # fmt: skip
        (
            {"ops": [{"op": "hflip", "prob": 0.5}]},
            r"ops\[0\] \(hflip\): unknown key 'prob'.*; allowed: p",
        ),  # fmt: skip
        (
            {"ops": [{"op": "hflip", "p": 1.5}]},
            r"ops\[0\] \(hflip\): p=1.5 is invalid; allowed: a number in \[0, 1\]",
        ),  # fmt: skip
        (
            {"ops": [{"op": "hflip"}, {"op": "random_resized_crop", "scale": [0.9, 0.1]}]},
            r"ops\[1\] \(random_resized_crop\): scale=\(0.9, 0.1\) is invalid; allowed: a pair",
        ),  # fmt: skip
        (
            {"ops": [{"op": "rand_augment", "interpolation": "cubic"}]},
            r"interpolation='cubic' is invalid; allowed: nearest or bilinear",
        ),  # fmt: skip
        ({"ops": [], "extra": 1}, r"src: unknown top-level key\(s\) \['extra'\]"),
        ([{"op": "hflip"}], r"src: a policy is a mapping with an 'ops' list"),
    ],
)
def test_bad_policy_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_policy(spec, "bad", source="src")


def test_overrides_are_checked_and_name_the_file():
    assert load_policy("strong", {"rand_augment.m": 5}).ops[-1].m == 5
    with pytest.raises(ValueError, match=r"strong\.yaml: ops\[2\] \(rand_augment\): m=40 is invalid; allowed: an integer in \[0, 30\]"):  # fmt: skip
        load_policy("strong", {"rand_augment.m": 40})
    with pytest.raises(ValueError, match=r"weak\.yaml: override 'rand_augment.m' names no op of this policy"):  # fmt: skip
        load_policy("weak", {"rand_augment.m": 5})


def test_bad_input():
    with pytest.raises(ValueError, match="expects uint8"):
        load_policy("weak")(torch.zeros(2, 1, 8, 8), _g(0))
    with pytest.raises(ValueError, match=r"boxes must be \[N, 4\]"):
        load_policy("weak")(_batch(1, 8, n=2), _g(0), torch.zeros(3, 4))


@pytest.mark.parametrize("name", list_policies())
@pytest.mark.parametrize("channels", [1, 3])
def test_policies_run_on_another_device(name, channels):
    """trainer.aug.device=auto: a batch on a non-CPU device (``meta`` stands in for CUDA: any
    CPU tensor meeting its pixels raises) is augmented there, with the CPU's draws and boxes."""
    x = torch.randint(0, 256, (16, channels, 32, 32), dtype=torch.uint8)
    boxes = torch.tensor([[4.0, 4.0, 28.0, 28.0]]).repeat(16, 1)
    pol = load_policy(name)
    y_cpu, b_cpu = pol(x, torch.Generator().manual_seed(0), boxes)
    y_dev, b_dev = pol(x.to("meta"), torch.Generator().manual_seed(0), boxes)
    assert y_dev.device.type == "meta" and y_dev.shape == y_cpu.shape
    assert torch.equal(b_dev, b_cpu)  # boxes stay on the CPU and see the same draws
