"""Typed run configs: defaults, YAML loading with overrides, hashing, and one-line errors naming the key.
Run: `.venv/bin/pytest tests/test_config.py`.
"""

import pytest

from rnnlab.lab.config import ConfigError, RunConfig, load_config, load_yaml, make_config


def test_defaults_and_overrides_from_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: copy\nseq_len: 50\ncell: gru\nclip: global_norm\nclip_threshold: 1.0\n")
    config = load_config(path, {"seq_len": 80, "seed": None})
    assert (config.task, config.seq_len, config.cell, config.seed) == ("copy", 80, "gru", 0)


def test_hash_ignores_the_name_and_changes_with_anything_else():
    a = make_config({"name": "x"})
    assert a.hash() == make_config({"name": "y"}).hash() == RunConfig().hash()
    assert a.hash() != make_config({"seed": 1}).hash()
    assert len(a.hash()) == 16


def test_chrono_gets_t_max_from_the_sequence_length():
    config = make_config({"init": "orthogonal+chrono", "seq_len": 77})
    assert config.resolved_init_options() == {"t_max": 77}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lerning_rate": 0.1}, "unknown config key 'lerning_rate'; valid keys: name, task"),
        ({"lr": "fast"}, "lr: Input should be a valid number"),
        ({"lr": -1}, "lr: Input should be greater than 0 (got -1)"),
        ({"seq_len": -5}, "seq_len: Input should be greater than or equal to 1 (got -5)"),
        ({"task": "text", "bptt_k1": 20, "bptt_k2": 10}, "bptt_k2 (10) must be ≥ bptt_k1 (20)"),
        ({"clip": "global_norm"}, "clip='global_norm' needs clip_threshold > 0"),
        ({"clip": "value", "clip_threshold": 0}, "clip_threshold: Input should be greater than 0 (got 0)"),
        ({"clip": "sometimes", "clip_threshold": 1}, "clip: Input should be 'none', 'global_norm'"),
        ({"cell": "lstn"}, "unknown cell 'lstn'; choose from: rnn_tanh"),
        ({"cell": "gru", "init": "chrono"}, "init 'chrono' does not apply to a gru module"),
        ({"task": "adding", "bptt_k1": 5}, "bptt_k1 / bptt_k2 apply to stream tasks"),
        ({"task": "text", "truncate": 5}, "truncate applies to sequence tasks"),
        ({"task": "copy", "task_options": {"symbols": 3}}, "task 'copy' has no option 'symbols'"),
        # The task's own checks, when the config is written rather than when its run starts:
        ({"task": "adding", "seq_len": 1}, "task 'adding': seq_len must be an integer ≥ 2, got 1"),
        ({"task": "arithmetic", "seq_len": 10}, "task 'arithmetic': seq_len must be an integer ≥ 30"),
        ({"task": "temporal_order", "task_options": {"symbols": 4}}, "symbols must be 2 or 3, got 4"),
        ({"task": "digits", "task_options": {"order": "pixelz"}}, "task 'digits': unknown order 'pixelz'"),
        ({"task": "digits", "seq_len": 100}, "task 'digits' with order='rows' has seq_len 8, got 100"),
        ({"task": "mnist", "seq_len": 100}, "seq_len must be 28 (order rows) or 784 (order pixels), got 100"),
        ({"task": "mnist", "task_options": {"permuted": True, "order": "rows"}}, "permuted=True needs order='pixels'"),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        make_config(data)
    text = str(info.value)
    assert "\n" not in text
    assert message in text, text


@pytest.mark.parametrize(
    ("data", "length"),
    [
        ({"task": "digits"}, 8),
        ({"task": "digits", "task_options": {"order": "pixels", "permuted": True}}, 64),
        ({"task": "mnist"}, 28),
        ({"task": "mnist", "task_options": {"order": "pixels"}}, 784),
        ({"task": "adding"}, 100),
    ],
)
def test_a_task_with_one_length_gets_it_when_none_is_given(data, length):
    from rnnlab.lab.tasks import make_task

    config = make_config(data)
    assert config.seq_len == length
    if config.task == "digits":  # the run builds at that length (mnist needs the optional extra)
        assert make_task(config.task, seq_len=config.seq_len, **config.task_options).length == length


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("task: [adding\n", "is not valid YAML at line 2"),
        ("- a\n- b\n", "must hold a mapping of keys to values, got list"),
        ("!!python/object/apply:os.system ['echo hacked']\n", "is not valid YAML"),
        ("task: adding\nlr: 0.1\nlr: 0.01\n", r"key 'lr' is given twice \(lines 2 and 3\); keep one"),
        ("task: adding\ntask_options: {symbols: 4, symbols: 8}\n", r"key 'symbols' is given twice \(lines 2 and 2\)"),
    ],
)
def test_bad_yaml_files(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/run.yaml")


def test_momentum_is_zero_unless_given_and_alpha_is_settable_for_rmsprop():
    from rnnlab.lab.trainer import Trainer

    rmsprop = Trainer(make_config({"optimizer": "rmsprop", "alpha": 0.9, "steps": 1})).optimizer
    assert (rmsprop.defaults["alpha"], rmsprop.defaults["momentum"]) == (0.9, 0.0)
    sgd = Trainer(make_config({"optimizer": "sgd", "steps": 1})).optimizer
    assert sgd.defaults["momentum"] == 0.0
    assert Trainer(make_config({"optimizer": "rmsprop", "steps": 1})).optimizer.defaults["alpha"] == 0.99
    with pytest.raises(ConfigError, match="alpha is RMSprop's smoothing constant; optimizer 'sgd'"):
        make_config({"optimizer": "sgd", "alpha": 0.9})


def test_optimizers_come_from_one_table_that_the_config_trainer_and_cli_read():
    from rnnlab.cli import build_parser
    from rnnlab.lab.optimizers import OPTIMIZERS
    from rnnlab.lab.trainer import Trainer

    with pytest.raises(ConfigError, match="unknown optimizer 'adagrad'; choose from: adam, sgd, rmsprop"):
        make_config({"optimizer": "adagrad"})
    for name, spec in OPTIMIZERS.items():
        optimizer = Trainer(make_config({"optimizer": name, "momentum": 0.5, "steps": 1})).optimizer
        assert type(optimizer) is spec.torch_class
        assert optimizer.defaults.get("momentum", 0.5) == 0.5, "momentum reaches every optimizer that takes one"
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = next(a.choices for a in train._actions if a.dest == "optimizer")
    assert list(choices) == list(OPTIMIZERS)


def test_hashes_of_configs_written_before_the_new_keys_are_unchanged():
    # Hashes as computed by the first stores (default Adam config; SGD with the then-default momentum 0.9).
    assert RunConfig().hash() == "0ca3b76a2c84eae2"
    assert make_config({"optimizer": "sgd", "momentum": 0.9}).hash() == "9e7f8b2737f7accf"
    # An unset momentum is now 0 (torch.optim's default), which is a different experiment from 0.9 …
    assert make_config({"optimizer": "sgd"}).hash() != make_config({"optimizer": "sgd", "momentum": 0.9}).hash()
    # … and the same one as an explicit 0.
    assert make_config({"optimizer": "sgd"}).hash() == make_config({"optimizer": "sgd", "momentum": 0.0}).hash()
    assert make_config({"success": "baseline"}).hash() != RunConfig().hash()


def test_readout_std_leaves_old_hashes_alone_and_is_part_of_new_ones():
    # Hashes computed on main at 08c4613, before readout_std existed: an IRNN-like SGD run and a small one.
    irnn = {"cell": "rnn_relu", "init": "identity", "seq_len": 150, "lr": 1e-4, "optimizer": "sgd", "momentum": 0.9}
    irnn |= {"clip": "global_norm", "clip_threshold": 1.0, "seed": 3}
    assert make_config(irnn).hash() == "464d76636cb3f750"
    small = {"seq_len": 10, "cell": "rnn_relu", "init": "identity", "hidden_size": 8, "seed": 3}
    assert make_config(small).hash() == "53820b71c83975ce"
    assert make_config({**small, "readout_std": None}).hash() == "53820b71c83975ce"
    assert "readout_std" not in make_config(small).canonical()
    with_readout = make_config({**small, "readout_std": 0.001})
    assert with_readout.canonical()["readout_std"] == 0.001
    assert with_readout.hash() not in ("53820b71c83975ce", make_config({**small, "readout_std": 0.01}).hash())


def test_a_learned_initial_state_leaves_old_hashes_alone_and_applies_to_torch_cells_only():
    small = {"seq_len": 10, "cell": "rnn_relu", "init": "identity", "hidden_size": 8, "seed": 3}
    assert make_config({**small, "initial_state": "zeros"}).hash() == "53820b71c83975ce"  # as before the key
    learned = make_config({**small, "initial_state": "learned"})
    assert learned.canonical()["initial_state"] == "learned" and learned.hash() != "53820b71c83975ce"
    for cell in ("lstm", "gru", "rnn_tanh"):
        assert make_config({"cell": cell, "initial_state": "learned"}).initial_state == "learned"
    assert learned.label() == "rnn_relu:identity learned h0" and "learned" not in make_config(small).label()
    with pytest.raises(ConfigError, match="initial_state: Input should be 'zeros' or 'learned'"):
        make_config({"initial_state": "random"})
    with pytest.raises(ConfigError) as error:
        make_config({"cell": "indrnn", "initial_state": "learned"})
    message = str(error.value)
    assert (
        "initial_state 'learned' applies to the cells rnn_tanh, rnn_relu, rnn_linear, lstm, gru, lstm_peephole_out"
        in message
    )
    assert "got cell 'indrnn'" in message and "\n" not in message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"readout_std": 0}, "readout_std: Input should be greater than 0 (got 0)"),
        ({"readout_std": "small"}, "readout_std: Input should be a valid number"),
        ({"cell": "lstm", "init": "sparse_tanh"}, "init 'sparse_tanh' does not apply to a lstm module"),
        ({"cell": "rnn_tanh", "init": "sparse_tanh", "init_options": {"rh": 1}}, "init option 'rh' is not used"),
    ],
)
def test_the_papers_settings_give_one_line_errors(data, message):
    with pytest.raises(ConfigError) as error:
        make_config(data)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_study_file_can_ask_for_the_papers_initialisations(tmp_path):
    from rnnlab.lab.study import load_study

    path = tmp_path / "papers.yaml"
    path.write_text(
        "defaults: {task: adding, seq_len: 20, hidden_size: 16}\n"
        "variants:\n"
        "  - {name: IRNN, cell: rnn_relu, init: identity+input_normal, init_options: {input_std: 0.001},"
        " readout_std: 0.001}\n"
        "  - {name: smart tanh, cell: rnn_tanh, init: sparse_tanh, init_options: {rho: 0.95}, readout_std: 0.01}\n"
    )
    irnn, tanh = load_study(path).runs
    assert (irnn.init, irnn.resolved_init_options(), irnn.readout_std) == (
        "identity+input_normal",
        {"input_std": 0.001},
        0.001,
    )
    assert (tanh.init, tanh.resolved_init_options(), tanh.readout_std) == ("sparse_tanh", {"rho": 0.95}, 0.01)


def test_the_default_init_is_the_cell_s_own_and_keeps_the_hashes_of_torch_default_runs():
    """init: default builds IndRNN with the authors' u ~ U(0, 1) (torch_default would draw u from U(±1/√H));
    for an LSTM it is torch_default, under the same hash."""
    from rnnlab.lab.trainer import Trainer

    assert RunConfig().init == "default"
    assert make_config({"init": "torch_default"}).hash() == RunConfig().hash() == "0ca3b76a2c84eae2"
    indrnn = make_config({"cell": "indrnn", "hidden_size": 64, "seq_len": 10, "steps": 1})
    assert (
        indrnn.label() == "indrnn"
        and indrnn.hash() != make_config({**indrnn.canonical(), "init": "torch_default"}).hash()
    )
    u = Trainer(indrnn).model.rnn.weight_hh_l0.detach()
    assert float(u.min()) >= 0.0 and float(u.max()) > 0.5  # U(±1/8) would have negatives and nothing above 0.125


def test_cell_options_reach_the_module_and_bad_ones_are_one_line_errors():
    """cell_options are the module's own keyword options (coRNN's constants here), part of the hash and the
    label; an option the module does not take, or a value it refuses, is a one-line ConfigError."""
    from rnnlab.lab.trainer import Trainer
    from rnnlab.recurrent.convert import cell_options

    small = {"cell": "cornn", "seq_len": 10, "hidden_size": 4, "steps": 1}
    smnist = make_config({**small, "cell_options": {"dt": 0.042, "gamma": 2.7, "epsilon": 4.7}})
    assert smnist.hash() != make_config(small).hash() and "cell_options" not in make_config(small).canonical()
    assert smnist.label() == "cornn dt=0.042 gamma=2.7 epsilon=4.7"
    cell = Trainer(smnist).model.rnn.cell
    assert (cell.dt, cell.gamma, cell.epsilon) == (0.042, 2.7, 4.7)
    assert cell_options("cornn") == ("dt", "gamma", "epsilon") and cell_options("lstm") == ()
    assert "recurrent_max_abs" in cell_options("indrnn") and "r_min" in cell_options("lru")
    for options, message in [
        ({"dtt": 0.1}, r"cell 'cornn' has no option 'dtt'; its options: dt, gamma, epsilon"),
        ({"dt": -1.0}, r"dt must be a finite number > 0, got -1"),
    ]:
        with pytest.raises(ConfigError, match=message) as error:
            make_config({**small, "cell_options": options})
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match=r"cell 'lstm' has no option 'proj_size'; its options: none"):
        make_config({"cell": "lstm", "cell_options": {"proj_size": 2}})


def test_a_yaml_merge_key_may_be_overridden_without_counting_as_a_repeated_key(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &base {hidden_size: 16, lr: 0.1}\ntask_options: {}\n<<: *base\nlr: 0.01\n")
    data = load_yaml(path)
    assert (data["hidden_size"], data["lr"]) == (16, 0.01)
