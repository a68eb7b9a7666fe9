"""Typed suite configurations: defaults in one place, every bad key or value a clear error."""

import json

import pytest

from captum_lmac.benchmark.config import SuiteConfig, builtin_config, defaults, from_dict, load_config
from captum_lmac.benchmark.suites import SUITE_CONFIGS
from captum_lmac.errors import DataNotFoundError, InputError


def test_defaults_and_sections():
    cfg = from_dict({})
    assert isinstance(cfg, SuiteConfig) and cfg.seed == 0 and cfg.domains == ["stft", "mel"]
    assert cfg.section("lmac").fit["epochs"] == 12 and cfg.section("l2i").thresholds == [0.2, 0.4, 0.6, 0.8]
    assert cfg.section("saliency") is None
    d = defaults()
    assert d["lmac"]["init"]["hidden"] == 32 and "sections" not in d  # sections are inlined
    assert from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()  # round trip


def test_merging_keeps_unnamed_entries():
    cfg = from_dict({"lmac": {"fit": {"epochs": 3}}, "method_options": {"ig": {"n_steps": 4}}})
    assert cfg.section("lmac").fit == {"epochs": 3, "lr": 2e-3, "batch_size": 16, "lambda_s": 2.0, "out_loss": "bounded"}
    assert cfg.method_options["ig"] == {"n_steps": 4} and "smoothgrad" in cfg.method_options


@pytest.mark.parametrize("bad, message", [
    ({"sead": 1}, r"unknown key config.sead \(did you mean 'seed'\?\); allowed keys: .*seed"),
    ({"seed": "one"}, r"config.seed must be an integer, got 'one'"),
    ({"n_test": 2.5}, r"config.n_test must be integer or null"),
    ({"methods": ["gradcam", "lmca"]}, r"unknown method 'lmca' \(did you mean 'lmac'\?\)"),
    ({"methods": "gradcam"}, r"config.methods must be list of string"),
    ({"conditions": ["noise"]}, r"unknown condition 'noise'.*choose from in-domain, clip, white, speech, ambient"),
    ({"domains": ["wave"]}, r"unknown domain 'wave'; choose from stft, mel"),
    ({"snr_preset": "loud"}, r"snr_preset must be one of paper, released"),
    ({"sanity": {"refit": "first"}}, r"config.sanity.refit must be 'none', 'last' or 'all'"),
    ({"sanity": {"refit_epochs": 0}}, r"config.sanity.refit_epochs must be a positive number of epochs or null"),
    ({"lmac": {"init": {"hiden": 8}}}, r"unknown key config.lmac.init.hiden; allowed: .*hidden"),
    ({"lmac": {"fit": {"epoch": 8}}}, r"unknown key config.lmac.fit.epoch; allowed: .*epochs"),
    ({"lmac_ft": {"pairs": "clean"}}, r"config.lmac_ft.pairs must be 'auto', 'synthetic' or 'wham'"),
    ({"data": {"reader": "ESC5O", "root": "x"}}, r"config.data.reader must be one of .*\(did you mean 'ESC50'\?\)"),
    ({"data": {"reader": "ESC50"}}, r"config.data.root: the ESC50 reader needs the folder"),
    ({"sanity": {"enabled": "yes"}}, r"config.sanity.enabled must be true or false"),
    ({"sanity": {"methods": ["lmcx"]}}, r"unknown method 'lmcx'"),
    ({"analyses": ["roar!"]}, r"unknown analysis 'roar!'"),
    ({"feature_domain_methods": ["ig"], "methods": ["gradcam"]}, r"'ig' is not in config.methods"),
    ({"method_options": {"gradcm": {}}}, r"unknown method 'gradcm'"),
    ({"quantus": "slow"}, r"quantus must be 'fast' or 'quantus'"),
    ({"classifier": {"source": "hub"}}, r"config.classifier.source must be one of recipe, clap, file"),
    ({"batch_size": 0}, r"config.batch_size must be >= 1"),
])
def test_bad_values_name_the_key(bad, message):
    with pytest.raises(InputError, match=message):
        from_dict(bad)


def test_builtin_suites_and_files(tmp_path):
    for name in SUITE_CONFIGS:
        assert builtin_config(name).suite == name
    with pytest.raises(InputError, match="unknown suite 'synthetc'.*did you mean 'synthetic'"):
        load_config("synthetc", search_dirs=[tmp_path])
    with pytest.raises(DataNotFoundError, match="not found"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="is not valid JSON"):
        load_config(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="must hold a JSON object"):
        load_config(bad)
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"suite": "synthetic", "n_test": 20, "lmac": {"fit": {"epochs": 2}}}))
    cfg = load_config(f, overrides={"seed": 3})
    assert cfg.suite == "synthetic" and cfg.n_test == 20 and cfg.seed == 3 and cfg.config_file == str(f)
    assert cfg.section("lmac").fit["epochs"] == 2 and cfg.n_train == 240  # merged over the built-in suite
    f.write_text(json.dumps({"n_tset": 20}))
    with pytest.raises(InputError, match=f"unknown key {f}.n_tset"):
        load_config(f)


def test_choosing_methods_narrows_the_feature_domain_subset():
    from captum_lmac.benchmark.config import load_config

    cfg = load_config("esc10", {"methods": ["gradcam", "lmac_td"]})
    assert cfg.methods == ["gradcam", "lmac_td"] and cfg.feature_domain_methods == ["gradcam"]
    with pytest.raises(InputError, match="feature_domain_methods"):
        load_config("esc10", {"methods": ["gradcam"], "feature_domain_methods": ["lmac"]})
