"""Model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

A map that explains the *model* must change when the model's learned weights are replaced by
random ones; a map that stays the same is an edge detector of the image, whatever it looks
like. We compare each image's map from the trained model with the map from a copy whose
weights were re-initialised (same architecture, same explained class), by Spearman rank
correlation over pixels: near 0 means the map depends on what was learned (good), near 1
means it does not. The cascading variant randomises from the output layer downwards, one
block at a time, to show where the map's dependence on the weights comes from.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from braintumor.explain.base import AttributionMethod
from braintumor.explain.explainer import BatchExplanation, Explainer

# Mean rank correlation below which we call the check passed. Adebayo et al. give no cut-off;
# 0.5 is our rule of thumb: a map that keeps more than half its pixel ordering when every
# learned weight is destroyed is explaining the image, not the model.
PASS_BELOW = 0.5


def _in_scope(name: str, prefixes: Sequence[str] | None) -> bool:
    return prefixes is None or any(name == p or name.startswith(p + ".") for p in prefixes)


def randomised_copy(model: nn.Module, seed: int = 0,
                    prefixes: Sequence[str] | None = None) -> nn.Module:
    """A deep copy of ``model`` with its weights re-initialised (all, or those of the modules
    named in ``prefixes`` and below). The global RNG is left untouched.

    Modules are reset with their own ``reset_parameters`` (PyTorch's default initialisation;
    batch-norm statistics go back to mean 0, variance 1); parameters of modules without one
    are redrawn from a normal distribution with the original tensor's standard deviation.
    """
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for name, module in clone.named_modules():
            if not _in_scope(name, prefixes):
                continue
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    std = float(p.std()) if p.numel() > 1 else 1.0
                    p.normal_(0.0, std if std > 0 else 1.0)
    clone.eval()
    return clone


def cascade_order(model: nn.Module) -> list[str]:
    """Blocks to randomise in turn, output side first: the model's top-level children, with
    ``nn.Sequential``/``nn.ModuleList`` children expanded one level; those without weights
    are left out. For braintumor-net: head, stages.3, ..., stages.0, stem."""
    blocks: list[str] = []
    for name, child in model.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            blocks += [f"{name}.{sub}" for sub, _ in child.named_children()]
        else:
            blocks.append(name)
    modules = dict(model.named_modules())
    with_weights = [b for b in blocks if any(True for _ in modules[b].parameters())]
    return with_weights[::-1]


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho between two maps' pixels. A constant map has no pixel ordering to agree
    with anything, so its correlation is defined as 0 (and counted separately by callers)."""
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


@dataclass
class SanityResult:
    method: str
    randomised: str  # "all" or the cascade's last randomised block
    n_images: int
    mean_spearman: float  # the headline: low is good
    median_spearman: float
    mean_abs_spearman: float  # a strongly *negative* rho is a structural link too
    n_constant_maps: int  # maps from the randomised model with no variation at all
    passed: bool
    per_image: list[float]

    def to_dict(self, with_images: bool = False) -> dict:
        d = asdict(self)
        if not with_images:
            d.pop("per_image")
        return d


def _compare(method: str, label: str, trained: BatchExplanation,
             random: BatchExplanation) -> SanityResult:
    rhos = [rank_correlation(a, b) for a, b in zip(trained.maps, random.maps, strict=True)]
    constant = int(sum(np.ptp(m) == 0 for m in random.maps))
    mean = float(np.mean(rhos)) if rhos else float("nan")
    return SanityResult(method, label, len(rhos), mean,
                        float(np.median(rhos)) if rhos else float("nan"),
                        float(np.mean(np.abs(rhos))) if rhos else float("nan"), constant,
                        bool(mean < PASS_BELOW), [round(r, 4) for r in rhos])


def _random_explainer(explainer: Explainer, model: nn.Module) -> Explainer:
    return Explainer(model, classes=explainer.classes, preprocess=explainer.preprocess,
                     temperature=explainer.temperature, layer=explainer.layer_name)


def model_randomisation_check(explainer: Explainer, images_u8: np.ndarray,
                              method: str | AttributionMethod = "gradcam", seed: int = 0,
                              trained: BatchExplanation | None = None,
                              batch_size: int = 32) -> SanityResult:
    """Trained-vs-randomised maps for ``images_u8`` (N, S, S), each explaining the class the
    trained model predicts (pass ``trained`` to reuse maps already computed)."""
    if trained is None:
        trained = explainer.explain_batch(images_u8, method, batch_size=batch_size)
    rand = _random_explainer(explainer, randomised_copy(explainer.model, seed))
    random_maps = rand.explain_batch(images_u8, method, list(trained.targets),
                                     batch_size=batch_size)
    return _compare(trained.method, "all", trained, random_maps)


def cascading_randomisation(explainer: Explainer, images_u8: np.ndarray,
                            method: str | AttributionMethod = "gradcam", seed: int = 0,
                            trained: BatchExplanation | None = None,
                            batch_size: int = 32) -> list[SanityResult]:
    """One result per step of the cascade: blocks randomised from the output down to (and
    including) the named one."""
    if trained is None:
        trained = explainer.explain_batch(images_u8, method, batch_size=batch_size)
    order = cascade_order(explainer.model)
    out = []
    for k, block in enumerate(order, start=1):
        rand = _random_explainer(explainer, randomised_copy(explainer.model, seed, order[:k]))
        maps = rand.explain_batch(images_u8, method, list(trained.targets),
                                  batch_size=batch_size)
        out.append(_compare(trained.method, block, trained, maps))
    return out
