"""Property-based tests (hypothesis): generated configs, studies and tensor shapes thrown at the validators.
Each must give a valid result or a clean one-line error of the documented type — never another exception,
never a hang. The example counts below are the figures quoted in docs/reliability.md ("What rnnlab guarantees").
Run: `.venv/bin/pytest tests/test_properties.py`.
"""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnlab
from rnnlab.lab.config import ConfigError, RunConfig, make_config
from rnnlab.lab.study import make_study

EXAMPLES = 300
KEYS = [*RunConfig.model_fields, "lerning_rate", "hidden", "", "seq-len", "ray"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "adding",
            "copy",
            "text",
            "lstm",
            "gru",
            "rnn_tanh",
            "chrono",
            "orthogonal+chrono",
            "identity",
            "global_norm",
            "value",
            "adam",
        ]
    ),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_generated_configs_are_valid_or_a_clean_error(data):
    try:
        config = make_config(data)
    except ConfigError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert isinstance(config, RunConfig) and len(config.hash()) == 16


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.text(max_size=10), st.sampled_from(["ok", "../x", "a/b", "..", "study-1"])),
            "defaults": st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4),
            "grid": st.one_of(
                VALUES,
                st.dictionaries(
                    st.sampled_from(["seed", "seq_len", "cell", "bogus"]), st.lists(VALUES, max_size=3), max_size=2
                ),
            ),
            "variants": st.one_of(
                VALUES, st.lists(st.dictionaries(st.sampled_from([*KEYS, "name"]), VALUES, max_size=3), max_size=3)
            ),
            "claim": VALUES,
        },
    )
)
def test_generated_studies_are_valid_or_a_clean_error(data):
    try:
        study = make_study(data)
    except ConfigError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert study.runs and len({r.name for r in study.runs}) == len(study.runs)
        assert "/" not in study.name and study.name not in (".", "..")


@SETTINGS
@given(
    cell=st.sampled_from(["lstm", "gru", "rnn_tanh"]),
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=4),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64, torch.float16]),
    batch_first=st.booleans(),
    poison=st.sampled_from([None, float("nan"), float("inf")]),
)
def test_generated_inputs_give_an_output_or_a_clean_error(cell, shape, dtype, batch_first, poison):
    module = rnnlab.make_recurrent(cell, 3, 4, batch_first=batch_first)
    x = torch.zeros(shape, dtype=dtype)
    if poison is not None and x.numel() and dtype.is_floating_point:
        x.view(-1)[0] = poison
    try:
        output, _ = module(x)
    except (ValueError, TypeError) as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert torch.isfinite(output).all()
        assert output.shape[:-1] == x.shape[:-1] and output.shape[-1] == 4


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0])
def test_non_finite_or_non_positive_learning_rates_are_refused(value):
    with pytest.raises(ConfigError, match="lr"):
        make_config({"lr": value})
