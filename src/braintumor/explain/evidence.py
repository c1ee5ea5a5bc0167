"""``braintumor explain-check``: the evidence that the heatmaps mean something.

Three checks, each per method and each beside a baseline that says what "no better than
chance" would score (see the modules for the details):

- sanity (:mod:`.sanity`): maps of the trained model vs. the same architecture with random
  weights, on images of ``--split``;
- faithfulness (:mod:`.faithfulness`): deletion/insertion AUCs vs. a random pixel order, on the
  same images;
- localisation (:mod:`.localisation`, only with ``--masks``): pointing game (strict and
  within 15 px), energy pointing game and energy ratio, top-10/20 % IoU and Dice/IoU of the
  binarised map against tumour masks, per class, each vs. its chance baseline; for a model
  with a tumour head (:mod:`braintumor.models.tumour`) its own tumour map is scored the same
  way, and at the card's ``tumour_threshold``. The public masks cover *Training* images
  only: run it with ``--split Training``, and the command leaves out the images the model was
  fitted on (:func:`trained_on`, from the split its card records), so the figures describe
  images it has not seen (the sanity and faithfulness checks then leave them out too).

``--write-card`` records the figures in the measured bundle's card (:mod:`.evidence_card`).

Images are a class-stratified, seeded sample of at most ``--limit`` per check.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from braintumor import DISCLAIMER
from braintumor.data.datasets import SPLIT_NAMES, DatasetError, Sample, discover
from braintumor.data.errors import ImageReadError
from braintumor.data.masks import mask_path, read_mask
from braintumor.data.preprocess import Preprocessed, map_to_original, preprocess
from braintumor.data.readers import read_image
from braintumor.explain.explainer import Explainer
from braintumor.explain.faithfulness import RandomBaseline, deletion_insertion
from braintumor.explain.localisation import (
    LocalisationSummary,
    head_mask,
    localisation_scores,
    summarise,
)
from braintumor.explain.registry import canonical_method
from braintumor.explain.sanity import PASS_BELOW, model_randomisation_check
from braintumor.models.tumour import (
    DEFAULT_TUMOUR_THRESHOLD,
    has_tumour_head,
    tumour_probabilities,
)

TUMOUR_HEAD = "tumour-head"
"""Name the model's own tumour map is reported under, beside the attribution methods."""


@dataclass
class Item:
    """One evaluation image: where it came from, its pixels as read, its model input."""

    path: str
    label: str
    pixels: np.ndarray  # (H, W) uint8
    pre: Preprocessed
    mask: np.ndarray | None = None  # (H, W) bool on the same grid as ``pixels``


def stratified_sample(samples: Sequence[Sample], limit: int | None, seed: int = 0) -> list[Sample]:
    """At most ``limit`` samples, classes as balanced as their sizes allow, seeded."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.label].append(s)
    queues = []
    for label in sorted(groups):
        g = groups[label]
        queues.append([g[i] for i in rng.permutation(len(g))])
    if limit is None or limit >= len(samples):
        return [s for q in queues for s in q]
    out: list[Sample] = []
    depth = 0
    while len(out) < limit:
        for q in queues:
            if depth < len(q) and len(out) < limit:
                out.append(q[depth])
        depth += 1
    return out


def load_items(samples: Sequence[Sample], explainer: Explainer, data_root: Path | None = None,
               masks_root: Path | None = None) -> tuple[list[Item], list[tuple[str, str]]]:
    """Read and preprocess ``samples`` (and their masks); failures come back as (path, why)."""
    items, failed = [], []
    for s in samples:
        try:
            loaded = read_image(s.path)
            pre = preprocess(loaded.pixels, explainer.preprocess)
            mask = None
            if masks_root is not None and data_root is not None:
                mask = read_mask(mask_path(masks_root, data_root, s.path), loaded.pixels.shape)
        except (ImageReadError, ValueError, OSError) as exc:
            failed.append((str(s.path), getattr(exc, "reason", None) or str(exc)))
            continue
        items.append(Item(str(s.path), s.label, loaded.pixels, pre, mask))
    return items, failed


def sanity_and_faithfulness(explainer: Explainer, items: Sequence[Item], methods: Sequence[str],
                            steps: int = 20, seed: int = 0,
                            progress: Callable[[str], None] | None = None) -> dict:
    """Both model-side checks for every method on the same images."""
    images = np.stack([it.pre.image for it in items])
    sanity, faith = [], []
    baseline = None
    predictions = None
    for method in methods:
        trained = explainer.explain_batch(images, method)
        predictions = trained.predictions
        if baseline is None:
            baseline = RandomBaseline(explainer, images, trained.targets, steps, seed=seed)
        sanity.append(model_randomisation_check(explainer, images, method, seed, trained).to_dict())
        faith.append(deletion_insertion(explainer, images, trained.maps, trained.targets,
                                        trained.method, steps, seed=seed,
                                        baseline=baseline).to_dict())
        if progress:
            progress(method)
    labels = [it.label for it in items]
    acc = _accuracy(explainer, predictions, labels) if predictions is not None else None
    return {"n_images": len(items), "accuracy_on_these": acc,
            "sanity": sanity, "faithfulness": faith}


def _accuracy(explainer: Explainer, predictions: np.ndarray, labels: Sequence[str]) -> float:
    pairs = zip(predictions, labels, strict=True)
    return float(np.mean([explainer.classes[p] == y for p, y in pairs]))


def with_masks(samples: Sequence[Sample], masks: Path, root: Path,
               exclude: Collection[str] | None = None) -> list[Sample]:
    """The samples that have a mask under ``masks``, less the resolved paths in ``exclude``
    (the images a model was trained on, :func:`trained_on`)."""
    exclude = exclude or set()
    return [s for s in samples if os.path.realpath(s.path) not in exclude
            and mask_path(masks, root, s.path).is_file()]


def score_maps(method: str, items: Sequence[Item], maps: Sequence[np.ndarray] | np.ndarray,
               crop_threshold: float, heads: Sequence[np.ndarray] | None = None,
               threshold: float | None = None) -> LocalisationSummary:
    """Localisation of ready maps on the model grid (one per item, in [0, 1]) against the
    items' masks, each map brought back to its image's own (native) geometry first. Any map
    scores alike: an attribution method's, or a tumour map a model predicts itself (then pass
    its probability ``threshold`` to score the outline it would draw)."""
    rows = []
    for i, it in enumerate(items):
        heat = np.clip(map_to_original(maps[i], it.pre.crop), 0, 1)
        head = heads[i] if heads is not None else head_mask(it.pixels, crop_threshold)
        # An item without a mask is refused there (ValueError), as before this was typed.
        rows.append((it.label, localisation_scores(heat, it.mask, head,  # type: ignore[arg-type]
                                                   threshold=threshold)))
    return summarise(method, rows)


def tumour_maps(model: torch.nn.Module, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """(N, S, S) tumour probabilities of a model with a tumour head, on the model grid."""
    from braintumor.data.preprocess import to_model_input

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = to_model_input(images[i : i + batch_size]).to(device, torch.float32)
            out.append(tumour_probabilities(model, x)[1][:, 0].float().cpu().numpy())
    return np.concatenate(out)


def card_tumour_threshold(card: dict | None) -> float:
    """The probability a card says a tumour pixel needs (``tumour_threshold``), else the
    contract's default."""
    value = (card or {}).get("tumour_threshold")
    return float(value) if value is not None else DEFAULT_TUMOUR_THRESHOLD


def localisation(explainer: Explainer, items: Sequence[Item], methods: Sequence[str],
                 target: str = "predicted", batch_size: int = 32,
                 tumour_threshold: float = DEFAULT_TUMOUR_THRESHOLD) -> dict:
    """Localisation scores of each method's maps (original geometry) on images with masks,
    and of the model's own tumour map when it has a tumour head (under ``tumour_head``,
    binarised at ``tumour_threshold`` too).

    ``target``: "predicted" explains what the model decided (what a user sees); "label"
    explains the true class (the class the mask belongs to).
    """
    items = [it for it in items if it.mask is not None]
    images = np.stack([it.pre.image for it in items]) if items else None
    threshold = explainer.preprocess.crop_threshold
    heads = [head_mask(it.pixels, threshold) for it in items]  # once for all methods
    targets = [it.label for it in items] if target == "label" else None
    out = []
    predictions = None
    for method in methods:
        if not items:
            break
        batch = explainer.explain_batch(images, method, targets, batch_size=batch_size)
        predictions = batch.predictions
        out.append({**score_maps(batch.method, items, batch.maps, threshold, heads).to_dict(),
                    "layer": batch.layer})
    # predictions is set once any method ran, which non-empty items and methods guarantee.
    acc = (_accuracy(explainer, predictions, [it.label for it in items])  # type: ignore[arg-type]
           if items else None)
    report = {"n_images": len(items), "target": target, "accuracy_on_these": acc,
              "geometry": "original image (map_to_original)", "methods": out}
    if images is not None and has_tumour_head(explainer.model):
        maps = tumour_maps(explainer.model, images, batch_size)
        head_summary = score_maps(TUMOUR_HEAD, items, maps, threshold, heads, tumour_threshold)
        report["tumour_head"] = {**head_summary.to_dict(), "threshold": tumour_threshold}
    return report


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_report(report: dict, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up per call, so redirections (and capsys) apply
    p = lambda *a: print(*a, file=out)  # noqa: E731
    mf = report.get("model_faithfulness")
    if mf:
        p(f"\nSanity (model-parameter randomisation), {mf['n_images']} images of "
          f"{report['data']['split']}: mean Spearman trained vs random weights "
          f"(low is good, pass < {PASS_BELOW})")
        for s in mf["sanity"]:
            p(f"  {s['method']:<22} {s['mean_spearman']:+.3f}  median {s['median_spearman']:+.3f}"
              f"  mean |rho| {s['mean_abs_spearman']:.3f}  constant random maps "
              f"{s['n_constant_maps']}  {'PASS' if s['passed'] else 'FAIL'}")
        p("\nFaithfulness: AUC of the calibrated probability (deletion: low is good; insertion: "
          "high is good), beside random pixel / random block orders")
        p(f"  {'method':<22} {'deletion':>9} {'pixels':>7} {'blocks':>7} {'insertion':>10} "
          f"{'pixels':>7} {'blocks':>7}")
        for f in mf["faithfulness"]:
            p(f"  {f['method']:<22} {f['deletion']['auc']:9.3f} {f['random_deletion']['auc']:7.3f}"
              f" {f['random_block_deletion']['auc']:7.3f} {f['insertion']['auc']:10.3f}"
              f" {f['random_insertion']['auc']:7.3f} {f['random_block_insertion']['auc']:7.3f}")
    loc = report.get("localisation")
    if loc:
        print_localisation(loc, out)
    for note in report.get("notes", []):
        p(f"note: {note}")
    p(DISCLAIMER)


def _ci(s: dict, key: str) -> str:
    ci = (s.get("ci95") or {}).get(key)
    return f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else ""


def print_localisation(loc: dict, out=None) -> None:
    """The localisation table: per method (and the tumour head), overall and per class."""
    out = out or sys.stdout
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"\nLocalisation against tumour masks, {loc['n_images']} images (explaining the "
      f"{loc['target']} class), on the images' native grid; chance in brackets, bootstrap "
      "95 % interval in parentheses")
    rows = list(loc["methods"])
    if loc.get("tumour_head"):
        rows.append(loc["tumour_head"])
    for m in rows:
        where = f" at {m['layer']}" if m.get("layer") else ""
        thr = f" (threshold {m['threshold']:.2f})" if "threshold" in m else ""
        p(f"  {m['method']}{where}{thr}")
        for name, s in [("all", m["overall"]), *m["per_class"].items()]:
            p(f"    {name:<11} n={s['n']:<4} pointing {_fmt(s['pointing_game'])}"
              f"{_ci(s, 'pointing_game')} [head {_fmt(s.get('random_pointing_game_in_head'))}]"
              f"  within 15 px {_fmt(s.get('pointing_game_15px'))}"
              f"{_ci(s, 'pointing_game_15px')} "
              f"[head {_fmt(s.get('random_pointing_game_15px_in_head'))}]")
            p(f"    {'':<11}        energy {_fmt(s['energy_pointing_game'])} "
              f"[{_fmt(s['random_energy_pointing_game'])}]  ratio {_fmt(s.get('energy_ratio'))}"
              f" median {_fmt(s.get('energy_ratio_median'))} [1; head "
              f"{_fmt(s.get('random_energy_ratio_in_head'))}]  IoU@10% {_fmt(s['iou_top10'])} "
              f"[{_fmt(s['random_iou_top10'])}]")
            for rule, label in (("max15", ">=15% max"), ("area", "mask-sized"),
                                ("at_threshold", "at threshold")):
                if f"dice_{rule}" in s:
                    p(f"    {'':<11}        Dice {label} {_fmt(s[f'dice_{rule}'])} "
                      f"[{_fmt(s[f'random_dice_{rule}'])}]  IoU {_fmt(s[f'iou_{rule}'])} "
                      f"[{_fmt(s[f'random_iou_{rule}'])}]")


def trained_on(card: dict, data: str | Path) -> set[str]:
    """Resolved paths of the images a bundle's run fitted on; empty if its card records no
    run. Localisation on Training images (the only ones with masks) should leave them out,
    most of all for a model trained with the masks themselves."""
    from braintumor.data.splits import bundle_split_sides

    sides = bundle_split_sides(card, data) or {}
    return {p for p, side in sides.items() if side == "fit"}


def run_evidence(explainer: Explainer, data: str | Path, split: str = "Testing",
                 methods: Sequence[str] = ("gradcam",), limit: int | None = 200,
                 masks: str | Path | None = None, steps: int = 20, seed: int = 0,
                 localisation_target: str = "predicted", model_checks: bool = True,
                 log=None, exclude: Collection[str] | None = None,
                 tumour_threshold: float = DEFAULT_TUMOUR_THRESHOLD) -> dict:
    """All checks on a dataset folder; returns the report (what ``--out`` writes).
    ``model_checks=False`` skips sanity and faithfulness (localisation only); ``exclude``:
    resolved paths kept out of every check (the images the model was trained on, see
    :func:`trained_on`); ``tumour_threshold``: where a tumour head's map counts as tumour
    (the card's, :func:`card_tumour_threshold`)."""
    log = log or (lambda msg: None)
    methods = [canonical_method(m) for m in methods]
    index = discover(data)
    split_key = SPLIT_NAMES.get(split.lower(), split.lower())
    pool = index.split(split_key) if index.splits else index.samples
    if not pool:
        raise DatasetError(f"{data}: no images in split {split!r} (splits: "
                           f"{', '.join(index.splits) or 'none'})")
    report: dict = {
        "data": {"root": str(index.root), "split": split, "images_in_split": len(pool)},
        "methods": methods,
        "layer": explainer.layer_name,
        "settings": {"limit": limit, "steps": steps, "seed": seed},
        "failures": [],
        "notes": [],
        "disclaimer": DISCLAIMER,
    }
    t0 = time.perf_counter()
    if model_checks:
        unseen = [s for s in pool if os.path.realpath(s.path) not in exclude] if exclude else pool
        if len(unseen) < len(pool):
            report["notes"].append(f"sanity and faithfulness used only {split} images the "
                                   f"model did not train on ({len(unseen)} of {len(pool)})")
        chosen = stratified_sample(unseen, limit, seed)
        items, failed = load_items(chosen, explainer)
        report["failures"] += [{"path": p, "reason": r} for p, r in failed]
        log(f"sanity + faithfulness on {len(items)} images, methods: {', '.join(methods)}")
        if items:
            report["model_faithfulness"] = sanity_and_faithfulness(
                explainer, items, methods, steps, seed, progress=lambda m: log(f"  done: {m}"))
    if masks is not None:
        masks = Path(masks)
        if exclude:
            left_out = sum(os.path.realpath(s.path) in exclude for s in pool)
            report["notes"].append(
                f"localisation used only {split} images the model did not train on "
                f"({left_out} trained-on images left out, rebuilt from the split its card "
                "records)")
        with_mask = with_masks(pool, masks, index.root, exclude)
        if not with_mask:
            report["notes"].append(
                f"no mask under {masks} for any {split} image; the public tumour masks cover "
                "Training images only (use --split Training)")
        else:
            chosen = stratified_sample(with_mask, limit, seed)
            items, failed = load_items(chosen, explainer, index.root, masks)
            report["failures"] += [{"path": p, "reason": r} for p, r in failed]
            log(f"localisation on {len(items)} images with masks")
            report["localisation"] = localisation(explainer, items, methods, localisation_target,
                                                  tumour_threshold=tumour_threshold)
            report["localisation"]["images_with_masks_in_split"] = len(with_mask)
            if split_key == "train" and not exclude:
                report["notes"].append("localisation used Training images, which the model "
                                       "was trained on")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report
