"""The method registry: a learned method registered from outside the package runs through the harness."""

from dataclasses import dataclass, field
from typing import Any, Dict

import pytest
import torch
from torch import nn

from captum_lmac.benchmark import (
    METHODS,
    MethodSpec,
    Row,
    get_method,
    method_names,
    register_method,
    run_benchmark,
    unregister_method,
)
from captum_lmac.benchmark.config import from_dict
from captum_lmac.benchmark.schema import Section
from captum_lmac.errors import InputError


class EnergyMask:
    """A toy 'learned' explainer: fit learns one scale, the mask is a squashed, scaled input energy."""

    def __init__(self, model: nn.Module, sharpness: float = 1.0) -> None:
        self.model, self.sharpness, self.scale, self.history = model, sharpness, None, {}

    def fit(self, X: torch.Tensor, epochs: int = 1) -> Dict[str, Any]:
        self.scale = float(torch.log1p(X).mean())
        self.history = {"loss": [0.0] * epochs, "best_epoch": epochs - 1, "seconds": 0.0}
        return self.history

    def attribute(self, X: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.sharpness * (torch.log1p(X) - self.scale))

    def save(self, path):
        torch.save({"scale": self.scale, "sharpness": self.sharpness, "history": self.history}, path)
        return path

    @classmethod
    def load(cls, path, model):
        state = torch.load(path, weights_only=True)
        obj = cls(model, state["sharpness"])
        obj.scale, obj.history = state["scale"], state["history"]
        return obj


@dataclass
class EnergySection(Section):
    sharpness: float = 2.0
    fit: Dict[str, Any] = field(default_factory=lambda: {"epochs": 1})


FITS = []


def _fit(ctx):
    FITS.append(ctx.domain)
    obj = EnergyMask(ctx.model, ctx.section.sharpness)
    obj.fit(ctx.data.train_X(), **ctx.section.fit)
    return obj


def _rows(ctx, obj):
    return [Row(name="energy", base="energy", domain=ctx.domain, attribute=obj.attribute, kind="learned",
                mask_rule="sigmoid of the centred log energy", method=obj)]


@pytest.fixture
def energy():
    spec = register_method(MethodSpec(name="energy", description="toy learned method", kind="learned",
                                      section=EnergySection, fit=_fit, load=lambda p, ctx: EnergyMask.load(p, ctx.model),
                                      rows=_rows))
    yield spec
    unregister_method("energy")


def test_registered_method_runs_through_the_harness_and_its_cache(energy, tiny, make_config, tmp_path):
    model, stft, data = tiny
    FITS.clear()
    cfg = make_config(methods=["gradcam", "energy"], conditions=["in-domain"], energy={"sharpness": 3.0},
                      sanity={"enabled": False}, report={"n_examples": 0})
    res = run_benchmark(model, stft, data, config=cfg, cache_dir=tmp_path, progress=False)
    rows = {(r["domain"], r["method"]) for r in res["rows"]}
    assert rows == {(d, m) for d in ("stft", "mel") for m in ("gradcam", "energy")}
    assert FITS == ["stft", "mel"]  # fitted once per domain ...
    assert res["config"]["energy"] == {"sharpness": 3.0, "fit": {"epochs": 1}}  # its section, validated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_energy.pt", "tiny_energy_mel.pt"]
    again = run_benchmark(model, stft, data, config=cfg, cache_dir=tmp_path, progress=False)
    assert FITS == ["stft", "mel"]  # ... and reused from the interpreter cache
    first = {(r["domain"], r["method"]): r["metrics"]["AI"]["mean"] for r in res["rows"]}
    assert first == {(r["domain"], r["method"]): r["metrics"]["AI"]["mean"] for r in again["rows"]}
    changed = make_config(methods=["energy"], conditions=["in-domain"], domains=["stft"], energy={"sharpness": 1.0},
                          sanity={"enabled": False}, report={"n_examples": 0})
    run_benchmark(model, stft, data, config=changed, cache_dir=tmp_path, progress=False)
    assert FITS == ["stft", "mel", "stft"]  # other settings: refitted


def test_registry_lookup_and_errors(energy):
    assert get_method("energy") is energy and "energy" in method_names("learned")
    assert "gradcam" in method_names("baseline") and "lmac" in METHODS
    assert get_method("InputXGradient").kind == "baseline"  # any captum.attr class name
    with pytest.raises(InputError, match="already registered"):
        register_method(energy)
    with pytest.raises(InputError, match=r"unknown method 'enrgy' \(did you mean 'energy'\?\)"):
        get_method("enrgy")
    with pytest.raises(InputError, match="needs load"):
        MethodSpec(name="x", rows=_rows, fit=_fit)
    with pytest.raises(InputError, match="unknown key config.energy.sharpnes"):
        from_dict({"energy": {"sharpnes": 2}})


def test_mixture_row_is_the_ground_truth_floor_and_never_the_best(tiny, make_config, tmp_path):
    from captum_lmac.benchmark.report import best_rows
    from captum_lmac.metrics import si_sdr

    model, stft, data = tiny
    cfg = make_config(methods=["mixture", "gradcam"], conditions=["in-domain"], domains=["stft"], n_test=None,
                      sanity={"enabled": False}, report={"n_examples": 0})
    res = run_benchmark(model, stft, data, config=cfg, cache_dir=tmp_path, progress=False)
    rows = {r["method"]: r for r in res["rows"]}
    mix = rows["mixture"]
    assert mix["kind"] == "reference" and get_method("mixture").kind == "reference"
    assert mix["metrics"]["MM"]["mean"] == pytest.approx(1.0) and mix["metrics"]["AD"]["mean"] == pytest.approx(0.0)
    test = data["test"]
    floor = si_sdr(test.waveform, test.extra["clean"]).mean()
    assert mix["n"] == test.X.shape[0] and mix["metrics"]["SI-SDR"]["mean"] == pytest.approx(float(floor), abs=0.05)
    ordered = [rows["mixture"], rows["gradcam"]]
    assert 0 not in best_rows(ordered, "Fid-In") and 0 not in best_rows(ordered, "AD")
