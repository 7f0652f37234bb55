import json

import pytest

from counterfeit import config
from counterfeit.errors import UserError


def test_every_preset_resolves():
    for name in config.preset_names():
        cfg = config.load_config(name)
        assert cfg.name == name
        assert config.describe_preset(name)


def test_gan2014_preset_matches_the_authors_mnist_yaml():
    c = config.load_config("gan2014-mnist")
    assert (c.model.z_dim, c.model.g_hidden, c.model.g_init_range) == (100, [1200, 1200], 0.05)
    assert (c.model.d_units, c.model.d_pieces, c.model.d_layers, c.model.d_init_range) == (240, 5, 2, 0.005)
    assert (c.model.d_input_keep, c.model.d_hidden_keep) == (0.8, 0.5)
    assert (c.optim.name, c.optim.lr_d, c.optim.lr_g, c.optim.lr_decay, c.optim.min_lr) == ("sgd", 0.1, 0.1, 1.000004, 1e-6)
    assert (c.optim.momentum, c.optim.final_momentum, c.optim.momentum_saturate_epoch) == (0.5, 0.7, 250)
    assert (c.train.batch_size, c.train.n_dis, c.train.simultaneous) == (100, 1, True)
    assert (c.data.split, c.loss.g_loss, c.model.noise) == ("paper-train", "nonsat", "uniform")


def test_overrides_are_typed():
    cfg = config.load_config("gan2014-mnist", ["train.batch_size=64", "optim.lr_d=0.05", "model.g_hidden=[10, 20]",
                                               "train.simultaneous=false", "optim.min_lr=1e-5"])
    assert cfg.optim.min_lr == 1e-5  # YAML 1.1 alone would read '1e-5' as a string
    assert cfg.train.batch_size == 64 and cfg.optim.lr_d == 0.05
    assert cfg.model.g_hidden == [10, 20] and cfg.train.simultaneous is False


@pytest.mark.parametrize("override,message", [
    ("train.batchsize=3", "unknown config key 'train.batchsize'"),
    ("train.batch_size=abc", "train.batch_size: expected an integer"),
    ("train.simultaneous=3", "expected true/false"),
    ("optim.lr_d=fast", "expected a number"),
    ("nope", "expects key=value"),
])
def test_bad_overrides_are_user_errors(override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        config.load_config("gan2014-mnist", [override])


def test_unknown_preset_lists_known_ones():
    with pytest.raises(UserError, match="unknown preset 'gan2099'.*gan2014-mnist"):
        config.load_config("gan2099")


def test_yaml_file_and_diff(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\ntrain:\n  batch_size: 7\n")
    a = config.load_config(str(f))
    assert a.name == "mine" and a.train.batch_size == 7
    b = config.load_config(str(f), ["train.seed=3"])
    assert config.diff(a.to_dict(), b.to_dict()) == ["train.seed: 0 -> 3"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config.load_config(str(bad))


def test_every_key_is_declared_once_with_a_doc_and_its_range_is_what_validation_enforces():
    keys = list(config.settings())
    assert len(keys) > 90 and all(f.metadata.get("doc") for _, f, _ in keys), \
        [k for k, f, _ in keys if not f.metadata.get("doc")]
    assert config.resumable_keys() == {"train.steps", "train.epochs", "train.device", "train.threads",
                                       "train.max_minutes", "train.eval_every", "train.eval_samples",
                                       "train.precision", "train.compile", "train.memory_format", "train.patience",
                                       "description"}
    ranges = {k: config.describe_range(f) for k, f, _ in keys}
    assert ranges["train.batch_size"] == ">= 1" and ranges["optim.momentum"] == "[0, 1)"
    assert ranges["data.channels"] == "0 | 1 | 3" and ranges["optim.betas"].startswith("list of a number in [0, 1)")
    with pytest.raises(UserError, match=r"optim.momentum: 1.0 is out of range \[0, 1\)"):
        config.load_config("gan2014-mnist", ["optim.momentum=1.0"])
    with pytest.raises(UserError, match="data.channels: '2' is not one of 0, 1, 3"):
        config.load_config("gan2014-mnist", ["data.channels=2"])


def test_the_config_command_prints_every_key_with_its_doc_default_and_range(capsys):
    from counterfeit.cli.__main__ import main

    assert main(["config", "dcgan-mnist", "--set", "train.batch_size=32", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["key"] for r in rows] == [k for k, _, _ in config.settings()]
    bs = next(r for r in rows if r["key"] == "train.batch_size")
    assert (bs["value"], bs["default"], bs["type"], bs["range"]) == (32, 100, "int", ">= 1") and bs["doc"]
    assert main(["config", "dcgan-mnist"]) == 0
    out = capsys.readouterr().out
    assert "train.steps" in out and "may change on --resume" in out and "(default 100)" in out
    assert main(["config", "no-such-preset"]) == 2
