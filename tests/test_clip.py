"""Each clipping mode against its definition; global-norm clipping against torch.nn.utils.clip_grad_norm_.
Run: `.venv/bin/pytest tests/test_clip.py`.
"""

import pytest
import torch

from rnnlab.lab.clip import clip_gradients


def _params(scale=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64)) for shape in ((4, 3), (5,), (2, 2))]
    for p in params:
        p.grad = scale * torch.randn(p.shape, generator=gen, dtype=torch.float64)
    return params


def _global_norm(params):
    return torch.sqrt(sum((p.grad**2).sum() for p in params)).item()


@pytest.mark.parametrize("threshold", [0.5, 100.0])
def test_global_norm_matches_torch(threshold):
    ours, theirs = _params(), _params()
    stats = clip_gradients(ours, "global_norm", threshold)
    total = torch.nn.utils.clip_grad_norm_(theirs, threshold)
    assert stats.pre_norm == pytest.approx(total.item(), rel=1e-12)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0)
    assert stats.clipped == (total.item() > threshold)
    if stats.clipped:
        assert _global_norm(ours) == pytest.approx(threshold, rel=1e-5)


def test_value_clamps_every_element():
    params = _params(scale=2.0)
    before = [p.grad.clone() for p in params]
    stats = clip_gradients(params, "value", 0.7)
    assert stats.clipped
    for b, p in zip(before, params, strict=True):
        torch.testing.assert_close(p.grad, b.clamp(-0.7, 0.7), rtol=0, atol=0)
    assert stats.pre_norm == pytest.approx(torch.sqrt(sum((b**2).sum() for b in before)).item())


def test_per_param_norm_rescales_each_tensor_separately():
    params = _params(scale=3.0)
    before = [p.grad.clone() for p in params]
    stats = clip_gradients(params, "per_param_norm", 1.0)
    assert stats.clipped
    for b, p in zip(before, params, strict=True):
        norm = b.norm().item()
        expected = b * (1.0 / norm) if norm > 1.0 else b
        torch.testing.assert_close(p.grad, expected, rtol=1e-12, atol=0)
        # direction of each tensor is kept
        torch.testing.assert_close(p.grad / p.grad.norm(), b / b.norm(), rtol=1e-12, atol=1e-15)
    # …but not that of the whole: the global norm is not simply threshold·(something)
    assert _global_norm(params) <= len(params) ** 0.5 + 1e-12


def test_none_only_measures_and_small_gradients_are_untouched():
    params = _params(scale=0.01)
    before = [p.grad.clone() for p in params]
    for mode in ("none", "global_norm", "value", "per_param_norm"):
        stats = clip_gradients(params, mode, 10.0)
        assert not stats.clipped
    for b, p in zip(before, params, strict=True):
        assert torch.equal(b, p.grad)


def test_errors():
    with pytest.raises(ValueError, match="unknown clipping mode 'norm'; choose from: none, global_norm"):
        clip_gradients(_params(), "norm", 1.0)
    with pytest.raises(ValueError, match="needs a positive threshold"):
        clip_gradients(_params(), "value", 0.0)
