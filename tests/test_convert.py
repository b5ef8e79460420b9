"""Whole models: `rnnlab.convert` swaps every torch.nn RNN/LSTM/GRU inside a model for rnnlab's (same numbers,
same state_dict keys), `rnnlab.convert_back` swaps them back, and saved rnnlab modules load with PyTorch's default
`torch.load(weights_only=True)`. Run: `.venv/bin/pytest tests/test_convert.py`.
"""

import copy
import io

import pytest
import torch
from torch import nn

import rnnlab


class Tagger(nn.Module):
    """A user's model: embedding → two recurrent layers of different kinds → readout."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(12, 6)
        self.encoder = nn.LSTM(6, 7, num_layers=2, batch_first=True)
        self.blocks = nn.ModuleList([nn.GRU(7, 5, batch_first=True), nn.Linear(5, 3)])

    def forward(self, x):
        out, _ = self.encoder(self.embed(x))
        out, _ = self.blocks[0](out)
        return self.blocks[1](out)  # (B, T, 3)


def _loss_and_grads(model, x):
    model.zero_grad()
    loss = model(x).pow(2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_convert_keeps_numbers_and_state_dict_keys_and_to_torch_reverses_it():
    torch.manual_seed(0)
    original = Tagger().double()
    x = torch.randint(0, 12, (3, 9))
    converted = rnnlab.convert(copy.deepcopy(original))
    assert isinstance(converted.encoder, rnnlab.LSTM) and isinstance(converted.blocks[0], rnnlab.GRU)
    assert list(converted.state_dict()) == list(original.state_dict())
    expected_loss, expected = _loss_and_grads(original, x)
    loss, grads = _loss_and_grads(converted, x)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-12, atol=1e-14)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-10, atol=1e-12)
    back = rnnlab.convert_back(converted)
    assert type(back.encoder) is nn.LSTM and type(back.blocks[0]) is nn.GRU
    back_loss, _ = _loss_and_grads(back, x)
    torch.testing.assert_close(back_loss, expected_loss, rtol=1e-12, atol=1e-14)


def test_a_converted_model_records_the_gradient_of_its_real_loss():
    torch.manual_seed(0)
    model = rnnlab.convert(Tagger())
    x = torch.randint(0, 12, (3, 9))
    with rnnlab.record_gradients(model) as recorder:
        model(x)[:, -1].sum().backward()
    assert {r.module for r in recorder.records} == {"encoder", "blocks.0"}
    encoder = next(r for r in recorder.records if r.module == "encoder")
    assert encoder.norms.shape == (2, 9) and (encoder.norms > 0).all()


def test_a_bare_module_is_returned_converted():
    lstm = rnnlab.convert(nn.LSTM(3, 4))
    assert isinstance(lstm, rnnlab.LSTM)
    assert isinstance(rnnlab.convert_back(lstm), nn.LSTM)


@pytest.mark.parametrize("module", [rnnlab.LSTM(4, 8, batch_first=True), rnnlab.GRU(4, 5, num_layers=2),
                                    rnnlab.RNN(4, 3, nonlinearity="relu")])  # fmt: skip
def test_whole_saved_modules_load_with_weights_only(module):
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)  # PyTorch's default since 2.6
    assert type(loaded) is type(module) and loaded.cell is module.cell, "the registry's cell, not a copy"
    x = torch.randn(2, 5, 4)
    assert torch.equal(loaded(x)[0], module(x)[0])
