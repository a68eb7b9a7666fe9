"""The benchmark harness end to end on a tiny classifier: rows, conditions, SNR, caching, CLI."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from captum_lmac.benchmark.conditions import (
    SNR_PRESETS,
    Condition,
    condition_set,
    ground_truth,
    resolve_conditions,
    snr_table,
    stratified_indices,
    wham_pairs,
)
from captum_lmac.benchmark.config import builtin_config, load_config, repo_benchmarks_dir
from captum_lmac.benchmark.suites import SUITE_CONFIGS
from captum_lmac.benchmark import evaluate_masks, main, run_benchmark
from captum_lmac.errors import InputError
from captum_lmac.metrics import faithfulness
from captum_lmac.training import save_classifier

TINY_CONDITIONS = ["in-domain", "clip", "white", "speech"]


def _row_names():
    names = ["gradcam", "saliency", "lmac"]
    names += ["l2i (RT=0.2)", "l2i (RT=0.6)"]
    return names


def test_rows_cover_domains_conditions_methods(tiny_run):
    res, _, _ = tiny_run
    rows = res["rows"]
    keys = {(r["domain"], r["condition"], r["method"]) for r in rows}
    expected = {(d, c, m) for d in ("stft", "mel") for c in TINY_CONDITIONS for m in _row_names()}
    assert keys == expected and len(rows) == len(expected)
    for r in rows:
        assert r["suite"] == "tiny" and r["n"] == 6
        assert r["ms_per_clip"] > 0
        for m in ("AI", "AD", "AG", "FF", "FidIn", "MM", "SPS", "COMP"):
            agg = r["metrics"][m]
            assert set(agg) == {"mean", "lo", "hi", "median", "n"}
            assert agg["lo"] <= agg["mean"] + 1e-9 <= agg["hi"] + 2e-9
        assert 0 <= r["metrics"]["MM"]["mean"] <= 1
        assert r["snr_db"] == (None if r["condition"] == "in-domain" else 3.0)
    assert {d["label"] for d in res["domains"]} == {"STFT→Mel", "Mel"}


def test_run_records_its_peak_memory_after_each_phase(tiny_run):
    res, out, _ = tiny_run
    peaks = res["memory"]["peak_rss_mb"]
    assert list(peaks)[:3] == ["start", "conditions", "fit_stft"] and "evaluate_mel" in peaks
    # every domain is fitted before any is evaluated: what only the fits need is gone by then
    assert list(peaks).index("fit_mel") < list(peaks).index("evaluate_stft")
    values = list(peaks.values())
    assert all(v > 50 for v in values) and values == sorted(values)  # a high-water mark only rises
    assert f"peak RSS {max(values) / 1000:.2f} GB" in (out / "report.html").read_text()


def test_ground_truth_metrics_on_synthetic(tiny_run):
    res, _, _ = tiny_run
    for r in res["rows"]:
        m = r["metrics"]
        assert math.isfinite(m["recall"]["mean"])  # the clean event is known in every condition
        if r["domain"] == "stft":
            assert math.isfinite(m["SI-SDR"]["mean"])  # listenable explanation vs the true event
        else:
            assert "SI-SDR" not in m  # Mel-domain masks are not listenable
    assert all(c["ground_truth"] for c in res["conditions"])


def test_conditions_report_requested_snr(tiny_run):
    res, _, _ = tiny_run
    by = {c["name"]: c for c in res["conditions"]}
    assert by["in-domain"]["snr_db"] is None
    for k in ("clip", "white", "speech"):
        assert by[k]["snr_db"] == 3.0
        assert by[k]["snr_db_measured"] == pytest.approx(3.0, abs=0.01)
    assert res["snr_db"] == {"clip": 3.0, "white": 3.0, "speech": 3.0}


@pytest.mark.parametrize("kind,snr", [("white", 6.0), ("clip", 12.0), ("speech", -2.0)])
def test_condition_set_mixes_at_the_requested_snr(tiny, speech_dir, kind, snr):
    model, stft, data = tiny
    test = data["test"].subset(range(4))
    s = condition_set(test, Condition(kind, snr), stft, speech_dir=speech_dir, progress=False)
    assert len(s) == 4 and s.X.shape == test.X.shape
    p_clean = s.extra["clean"].double().pow(2).mean(1)
    p_int = s.extra["interferer"].double().pow(2).mean(1)
    assert torch.allclose(10 * torch.log10(p_clean / p_int), torch.full((4,), snr, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(s.waveform, s.extra["clean"] + s.extra["interferer"], atol=1e-5)
    assert torch.equal(s.y, test.y)
    target, rest, what = ground_truth(s, Condition(kind, snr))
    assert torch.allclose(target + rest, s.waveform, atol=1e-5)
    assert torch.allclose(target, test.extra["clean"])  # the synthetic event, not the whole clip
    if kind == "clip":  # the interferer is a clip of another class
        assert "interferer" in s.extra


def test_contaminated_metrics_explain_the_contaminated_decision(tiny):
    """c = argmax f(X_contaminated): evaluate_masks uses the decision on the input it is given."""
    model, stft, data = tiny
    s = condition_set(data["test"], Condition("white", -10.0), stft, progress=False)
    masks = torch.rand_like(s.X)
    per = evaluate_masks(model, s.X, masks, quantus_mode="fast")
    ref = faithfulness(model, s.X, masks)  # default target: argmax f(X_contaminated)
    assert np.allclose(per["AD"], ref["AD"].numpy())
    with torch.no_grad():
        assert torch.equal(ref["target"], model(s.X).argmax(1))


def test_snr_presets():
    assert snr_table() == {"clip": 3.0, "white": 3.0, "speech": 3.0, "ambient": 3.0}
    assert snr_table(preset="released") == {"clip": 12.0, "speech": 12.0, "white": 6.0, "ambient": 3.0}
    assert snr_table(5) == {k: 5.0 for k in SNR_PRESETS["paper"]}
    assert snr_table({"white": 0.0}, preset="released")["white"] == 0.0
    conds = resolve_conditions(["in-domain", "white"], preset="released")
    assert [c.label for c in conds] == ["In-domain", "White noise @ 6 dB SNR"]
    with pytest.raises(InputError):
        resolve_conditions(["thunder"])
    with pytest.raises(InputError):
        snr_table(preset="louder")


def test_stratified_indices_balance_classes():
    y = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)
    idx = stratified_indices(y, 6)
    assert sorted(y[idx].tolist()) == [0, 0, 1, 1, 2, 2]
    assert stratified_indices(y, None) == list(range(30))


def test_wham_pairs_modes(tiny, tmp_path):
    import soundfile as sf

    model, stft, data = tiny
    pairs, what = wham_pairs(data["train"], stft, mode="auto")
    assert "clean source" in what and torch.equal(pairs.extra["clean_X"], data["train"].extra["clean_X"])
    noise = tmp_path / "noise"
    noise.mkdir()
    sf.write(str(noise / "n.wav"), (0.1 * np.random.default_rng(0).standard_normal(20000)).astype(np.float32), 16000)
    tr = data["train"].subset(range(4))
    pairs, what = wham_pairs(tr, stft, noise, snr_db=0.0, mode="wham", progress=False)
    assert pairs.X.shape == tr.X.shape and torch.allclose(pairs.extra["clean_X"], tr.X, atol=1e-4)
    assert "0 dB" in what
    assert pairs.extra["clean_X"] is tr.X  # the clean part is the clip itself: its magnitudes, not a copy
    lean, _ = wham_pairs(tr, stft, noise, snr_db=0.0, mode="wham", progress=False, phase=False)
    assert lean.phase is None and torch.equal(lean.X, pairs.X)


def test_training_clips_without_their_phase_give_the_same_pairs_and_mixtures(tiny):
    from captum_lmac.benchmark.conditions import augmented_training_set
    from captum_lmac.data import SpectrogramSet

    model, stft, data = tiny
    tr = data["train"]
    lean = SpectrogramSet(tr.waveform, tr.X, None, tr.y, dict(tr.extra), list(tr.classes))
    pairs, _ = wham_pairs(lean, stft, mode="synthetic")
    assert pairs.phase is None and torch.equal(pairs.X, wham_pairs(tr, stft, mode="synthetic")[0].X)
    kw = dict(fraction=0.5, snr_db=(3.0, 3.0), seed=1, progress=False)
    for add in (False, True):
        a, b = augmented_training_set(tr, stft, add=add, **kw), augmented_training_set(lean, stft, add=add, **kw)
        assert b.phase is None and torch.equal(a.X, b.X) and torch.equal(a.waveform, b.waveform)


def test_augmented_training_set_replaces_a_seeded_share_with_mixtures(tiny):
    from captum_lmac.benchmark.conditions import augmented_training_set

    model, stft, data = tiny
    tr = data["train"]
    aug = augmented_training_set(tr, stft, fraction=0.5, snr_db=(3.0, 3.0), seed=1, progress=False)
    changed = (aug.waveform != tr.waveform).flatten(1).any(dim=1)
    assert int(changed.sum()) == round(0.5 * len(tr))
    assert torch.equal(aug.y, tr.y) and torch.equal(aug.X[~changed], tr.X[~changed])
    # every changed clip is the original plus an interferer 3 dB below it, analysed again
    rest = aug.waveform[changed] - tr.waveform[changed]
    snr = 10 * torch.log10(tr.waveform[changed].pow(2).mean(1) / rest.pow(2).mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 3.0), atol=1e-3)
    X_again = stft.magnitude(aug.waveform[changed])
    assert torch.allclose(X_again, aug.X[changed], atol=1e-4)
    again = augmented_training_set(tr, stft, fraction=0.5, snr_db=(3.0, 3.0), seed=1, progress=False)
    assert torch.equal(again.waveform, aug.waveform)
    other = augmented_training_set(tr, stft, fraction=0.5, snr_db=(3.0, 3.0), seed=2, progress=False)
    assert not torch.equal(other.waveform, aug.waveform)
    assert augmented_training_set(tr, stft, fraction=0.0) is tr
    joined = augmented_training_set(tr, stft, fraction=0.5, snr_db=(3.0, 3.0), seed=1, progress=False, add=True)
    assert len(joined) == len(tr) + int(changed.sum())  # every clean clip kept, the same mixtures after them
    assert torch.equal(joined.X[: len(tr)], tr.X) and torch.equal(joined.X[len(tr):], aug.X[changed])
    assert torch.equal(joined.y[len(tr):], tr.y[changed])
    with pytest.raises(InputError, match="kinds"):
        augmented_training_set(tr, stft, kinds=["speech"])
    with pytest.raises(InputError, match="fraction"):
        augmented_training_set(tr, stft, fraction=1.5)


def test_lmac_augment_setting_is_checked_keyed_and_used(tiny, make_config, tmp_path):
    model, stft, data = tiny
    for bad in ({"fraction": 2}, {"kinds": ["ambient"]}, {"snr_db": [5, 0]}, {"colour": 1}, {"add": "yes"}):
        cfg = make_config(methods=["lmac"], conditions=["in-domain"], domains=["stft"])
        cfg["lmac"] = {"augment": bad, "fit": {"epochs": 1}}
        with pytest.raises(InputError, match="augment"):
            run_benchmark(model, stft, data, config=cfg, cache_dir=tmp_path, sanity=False, progress=False)
    cfg = make_config(methods=["lmac"], conditions=["in-domain"], domains=["stft"])
    cfg["lmac"] = {"fit": {"epochs": 1}}
    run_benchmark(model, stft, data, config=cfg, cache_dir=tmp_path, sanity=False, progress=False)
    stamp = (tmp_path / "tiny_lmac.pt").stat().st_mtime_ns
    cfg["lmac"]["augment"] = {"fraction": 0.5, "snr_db": [0, 6]}
    cfg["domains"] = ["stft", "mel"]  # the mixtures are shared, each domain fits on its own view of them
    res = run_benchmark(model, stft, data, config=cfg, cache_dir=tmp_path, sanity=False, progress=False)
    assert (tmp_path / "tiny_lmac.pt").stat().st_mtime_ns != stamp  # another fit, not the cached one
    from captum_lmac import LMAC

    for name, domain in (("tiny_lmac.pt", "stft"), ("tiny_lmac_mel.pt", "mel")):
        fitted = LMAC.load(tmp_path / name, model if domain == "stft" else model.in_feature_domain())
        assert fitted.history["benchmark"]["augment"] == {"fraction": 0.5, "snr_db": [0, 6]}
        assert fitted.history["benchmark"]["domain"] == domain
    assert {r["domain"] for r in res["rows"]} == {"stft", "mel"}


def test_interpreters_are_cached_and_reused(tiny, tiny_run, make_config, tmp_path):
    res, _, shared = tiny_run
    assert (shared / "tiny_lmac.pt").is_file() and (shared / "tiny_lmac_mel.pt").is_file()
    cache = tmp_path / "cache"  # a copy: the refit below must not replace what other tests read from the run's cache
    shutil.copytree(shared, cache)
    model, stft, data = tiny
    cfg = make_config(methods=["lmac"], conditions=["in-domain"], domains=["stft"])
    again = run_benchmark(model, stft, data, config=cfg, snr=3.0, cache_dir=cache, sanity=False, progress=False)
    old = next(r for r in res["rows"]
               if r["method"] == "lmac" and r["domain"] == "stft" and r["condition"] == "in-domain")
    new = again["rows"][0]
    assert new["metrics"]["AD"]["mean"] == pytest.approx(old["metrics"]["AD"]["mean"])
    assert again["timing"]["fit_seconds"] < 5  # loaded, not fitted
    # other fit settings: the cached decoder is not reused
    stamp = (cache / "tiny_lmac.pt").stat().st_mtime_ns
    cfg["lmac"] = {"fit": {"epochs": 1, "batch_size": 12}}
    run_benchmark(model, stft, data, config=cfg, snr=3.0, cache_dir=cache, sanity=False, progress=False)
    assert (cache / "tiny_lmac.pt").stat().st_mtime_ns != stamp


def test_sanity_refits_are_cached_for_their_randomised_weights_and_reused(tiny, tiny_run, make_config, tmp_path):
    res, _, shared = tiny_run
    assert len(list(shared.glob("tiny_lmac_refit_*.pt"))) == 1  # refit "last": one fit, fully randomised
    assert [f["reused"] for f in res["sanity"]["refit"]["fits"]["lmac (refit)"]] == [False]
    cache = tmp_path / "cache"
    shutil.copytree(shared, cache)
    model, stft, data = tiny
    cfg = make_config(methods=["lmac"], conditions=["in-domain"], domains=["stft"])
    again = run_benchmark(model, stft, data, config=cfg, snr=3.0, cache_dir=cache, progress=False)
    assert [f["reused"] for f in again["sanity"]["refit"]["fits"]["lmac (refit)"]] == [True]
    assert again["sanity"]["methods"]["lmac (refit)"]["mean"] == pytest.approx(res["sanity"]["methods"]["lmac (refit)"]["mean"])
    # another seed randomises to other weights: another refit (its own tag), fitted afresh
    other = run_benchmark(model, stft, data, config=dict(cfg, seed=1), snr=3.0, cache_dir=cache, progress=False)
    assert [f["reused"] for f in other["sanity"]["refit"]["fits"]["lmac (refit)"]] == [False]


def test_unknown_method_and_domain_are_refused(tiny, make_config):
    model, stft, data = tiny
    with pytest.raises(InputError, match="unknown method"):
        run_benchmark(model, stft, data, config=make_config(methods=["telepathy"], conditions=["in-domain"]),
                      sanity=False, progress=False)
    with pytest.raises(InputError, match="unknown domain"):
        run_benchmark(model, stft, data, config=make_config(domains=["wavelet"], conditions=["in-domain"]),
                      sanity=False, progress=False)


def test_user_registered_captum_method_runs(tiny, make_config):
    model, stft, data = tiny
    cfg = make_config(methods=["InputXGradient"], conditions=["in-domain"], domains=["stft"])
    res = run_benchmark(model, stft, data, config=cfg, sanity=False, progress=False)
    assert [r["method"] for r in res["rows"]] == ["InputXGradient"]


def test_builtin_suite_configs_match_shipped_files():
    for name in SUITE_CONFIGS:
        shipped = repo_benchmarks_dir() / f"{name}.json"
        assert shipped.is_file(), f"benchmarks/{name}.json missing"
        expected = builtin_config(name).to_dict()
        expected.pop("config_file")
        assert json.loads(shipped.read_text()) == json.loads(json.dumps(expected))
        assert load_config(name).suite == name
    syn = builtin_config("synthetic")
    assert syn.n_test <= 100 and syn.snr_preset == "paper"


def test_cli_main_runs_a_json_suite(tiny, speech_dir, tmp_path, capsys):
    model, stft, data = tiny
    clf = save_classifier(tmp_path / "tiny.pt", model, stft, data["train"].classes, {"test_acc": 0.5})
    cfg = {
        "suite": "tiny_cli",
        "data": {"reader": "SyntheticEvents", "kwargs": {"n_classes": 3, "duration": 1.0},
                 "splits": {"train": {"n_items": 12, "seed": 0}, "val": {"n_items": 6, "seed": 1},
                            "test": {"n_items": 12, "seed": 2}}},
        "speech_dir": str(speech_dir),
    }
    path = tmp_path / "tiny_cli.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "out"
    code = main(["benchmark", str(path), "--out", str(out), "--cache", str(tmp_path / "cache"),
                 "--classifier", str(clf),
                 "--methods", "gradcam,saliency", "--snr-preset", "released", "--n-test", "3", "--domains", "stft",
                 "--conditions", "in-domain,white", "--no-sanity", "--seed", "1", "--quiet",
                 "--set", "report.n_examples=1"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n_test"] == 3 and res["seed"] == 1
    assert res["snr_db"] == {"white": 6.0}  # the released code's white-noise SNR
    assert {r["method"] for r in res["rows"]} == {"gradcam", "saliency"}
    assert "White noise @ 6 dB SNR" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.json")]) == 2


def test_cli_trains_and_caches_a_recipe_classifier(tmp_path, speech_dir):
    """A suite without a cached classifier trains one from its recipe and reuses it on the next run."""
    cfg = {
        "suite": "tiny_recipe",
        "data": {"reader": "SyntheticEvents", "kwargs": {"n_classes": 3, "duration": 1.0},
                 "splits": {"train": {"n_items": 9, "seed": 0}, "val": {"n_items": 3, "seed": 1},
                            "test": {"n_items": 3, "seed": 2}}},
        "classifier": {"recipe": {"channels": [4, 8], "n_mels": 16, "epochs": 1, "batch_size": 8}},
        "methods": ["gradcam"], "conditions": ["in-domain"], "domains": ["stft"],
        "sanity": {"enabled": False}, "report": {"n_examples": 0},
    }
    path = tmp_path / "tiny_recipe.json"
    path.write_text(json.dumps(cfg))
    args = [str(path), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--quiet"]
    assert main(args) == 0
    pt = tmp_path / "cache" / "classifiers" / "tiny_recipe.pt"
    assert pt.is_file()
    stamp = pt.stat().st_mtime_ns
    assert main(args) == 0
    assert pt.stat().st_mtime_ns == stamp  # reused, not retrained
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["method"] for r in res["rows"]] == ["gradcam"] and res["examples"] == []
    # another classifier seed is another cached classifier; another recipe retrains the cached one
    assert main(args + ["--set", "classifier.seed=1"]) == 0
    assert (tmp_path / "cache" / "classifiers" / "tiny_recipe-seed1.pt").is_file()
    assert pt.stat().st_mtime_ns == stamp
    assert main(args + ["--set", "classifier.recipe.epochs=2"]) == 0
    assert pt.stat().st_mtime_ns != stamp
    info = json.loads((tmp_path / "cache" / "classifiers" / "tiny_recipe.json").read_text())
    assert info["config"]["epochs"] == 2 and info["seed"] == 0


def test_interpreter_seeds_give_mean_and_sd(tiny, make_config, tmp_path):
    model, stft, data = tiny
    cfg = make_config(methods=["gradcam", "lmac"], conditions=["in-domain"], domains=["stft"], seeds=[0, 1],
                      sanity={"enabled": False}, report={"n_examples": 0})
    res = run_benchmark(model, stft, data, config=cfg, out_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    rows = {r["method"]: r for r in res["rows"]}
    assert "seeds" not in rows["gradcam"]  # baselines are computed once
    seeds = rows["lmac"]["seeds"]
    assert seeds["seeds"] == [0, 1] and len(seeds["values"]["AI"]) == 2
    assert seeds["mean"]["MM"] == pytest.approx(sum(seeds["values"]["MM"]) / 2)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["tiny_lmac.pt", "tiny_lmac_s1.pt"]
    assert "lmac (stft) seed 1" in res["fits"]
    assert " ± " in (tmp_path / "results.md").read_text()


def test_roar_curves(tiny, make_config, tmp_path):
    model, stft, data = tiny
    cfg = make_config(methods=["gradcam", "lmac"], conditions=["in-domain"], domains=["stft"], analyses=["roar"],
                      sanity={"enabled": False}, report={"n_examples": 0},
                      roar={"methods": ["gradcam", "random"], "fractions": [0.3, 0.9], "seeds": [0, 1], "epochs": 1},
                      classifier={"recipe": {"channels": [4, 8], "n_mels": 16, "epochs": 1, "batch_size": 12}})
    from captum_lmac.data import SpectrogramSet

    # as the CLI loads them for this phase-free classifier: ROAR analyses the clips' phase again itself
    lean = {k: SpectrogramSet(s.waveform, s.X, None, s.y, dict(s.extra), list(s.classes)) if k != "test" else s
            for k, s in data.items()}
    res = run_benchmark(model, stft, lean, config=cfg, out_dir=tmp_path, progress=False)
    roar = res["analyses"]["roar"]
    assert roar["fractions_percent"] == [0.0, 30.0, 90.0]
    assert set(roar["methods"]) == {"gradcam", "random"}
    for r in roar["methods"].values():
        assert len(r["mean"]) == 3 and all(len(a) == 2 for a in r["accuracy"]) and all(0 <= v <= 1 for v in r["mean"])
    assert roar["methods"]["gradcam"]["accuracy"][0] == roar["methods"]["random"]["accuracy"][0]  # k = 0 shared
    assert roar["curves"]["series"]["random"]["baseline"] is True
    assert "## ROAR" in (tmp_path / "results.md").read_text()
    assert list((tmp_path / "figures").glob("roar_curves*.png"))


def test_removal_masks_remove_the_top_share():
    from captum_lmac.benchmark.roar import removal_masks

    scores = torch.arange(20.0).view(1, 1, 4, 5)
    keep = removal_masks(scores, 0.25)
    assert keep.sum() == 15 and keep.flatten()[-5:].sum() == 0


def test_condition_sets_are_built_on_demand_the_same_each_time_and_one_at_a_time(tiny, speech_dir):
    from captum_lmac.benchmark.harness import ConditionSets

    model, stft, data = tiny
    test = data["test"]
    built = []

    def build(cond):
        built.append(cond.name)
        return condition_set(test, cond, stft, speech_dir=speech_dir, seed=3, progress=False)

    white, clip = resolve_conditions(["white", "clip"], 3.0)
    sets = ConditionSets(build)
    a = sets.get(white)
    assert sets.get(white) is a and built == ["white"]  # held: not rebuilt
    g = sets.ground_truth(white)
    assert g is sets.ground_truth(white) and torch.allclose(g[0] + g[1], a.waveform, atol=1e-6)
    sets.get(clip)  # another condition replaces the held one
    b = sets.get(white)
    assert built == ["white", "clip", "white"] and b is not a
    for k in ("waveform", "X", "phase"):
        assert torch.equal(getattr(a, k), getattr(b, k))  # seeded per clip: the very same set
    sets.release()
    assert sets._set is None


def test_ground_truth_info_is_the_oracle_of_the_whole_set_a_few_clips_at_a_time(tiny, speech_dir):
    from captum_lmac.benchmark.conditions import ground_truth_info
    from captum_lmac.benchmark.harness import to_features
    from captum_lmac.metrics import oracle_mask

    model, stft, data = tiny
    (white,) = resolve_conditions(["white"], 3.0)
    g = ground_truth(condition_set(data["test"], white, stft, speech_dir=speech_dir, seed=3, progress=False), white)
    Xt = stft.analyze(g[0], allow_silent=True)[0]
    Xr = stft.analyze(g[1], allow_silent=True)[0]
    info = ground_truth_info(g, stft, chunk=4)
    assert info["target_wave"] is g[0] and torch.equal(info["oracle"], oracle_mask(Xt, Xr))
    mel = ground_truth_info(g, stft, lambda X_: to_features(model, X_), chunk=4)["oracle"]
    assert torch.equal(mel, oracle_mask(to_features(model, Xt), to_features(model, Xr)))
    assert mel.shape[2] != info["oracle"].shape[2]  # the feature domain's rows


def test_fine_tuning_pairs_keep_only_what_the_classifier_reads(tiny):
    from captum_lmac.benchmark.harness import DomainData

    model, stft, data = tiny
    cfg = builtin_config("synthetic")
    memo = {}
    dd = DomainData(model=model, domain="stft", data=data, config=cfg, stft=stft, data_root=None, memo=memo,
                    seed=0, progress=False)
    (X_mix, X_clean), what = dd.pair_data()
    tr = data["train"]
    if cfg.n_train is not None and cfg.n_train < len(tr):
        tr = tr.subset(range(cfg.n_train))
    ref, _ = wham_pairs(tr, stft, mode=cfg.section("lmac_ft").pairs)
    assert torch.equal(X_mix, ref.X) and torch.equal(X_clean, ref.extra["clean_X"])
    assert "pairs" not in memo and set(memo) == {"pair_spectra"}  # no waveforms or phase held
    assert dd.pairs()[0] is X_mix  # computed once
