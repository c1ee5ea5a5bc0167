"""Export a model bundle to ONNX: ``braintumor export --format onnx --out model.onnx``.

The graph takes ``image`` (N, 1, S, S) float in [0, 1] (what ``to_model_input`` makes) and
returns ``logits`` (N, C), with a dynamic batch axis; a model with a tumour head
(``braintumor.models.tumour``) also returns ``tumour_logits`` (N, 1, h, w), its raw tumour
map on the model's own grid (upsampling and sigmoid stay in Python, shared with PyTorch).
Last comes ``features`` (N, D): the input of the model's last ``nn.Linear``, which the
out-of-distribution check scores (``inference/ood.py``), so the ONNX backend gets logits and
features from one run and needs no PyTorch pass for it. Outputs are appended, never
reordered: ``logits`` stays first and ``tumour_logits`` second, and consumers ask for outputs
by name. Files exported before ``features`` existed lack it (see ``Predictor.attach_ood``).
Preprocessing and the temperature stay outside the graph, in the same Python functions the
PyTorch path uses, so the two backends cannot disagree on them; what they need is carried
with the file:

- embedded in the ONNX ``metadata_props`` (the file is self-contained): model name, weights
  checksum, classes, temperature, preprocessing and the full card;
- in ``<name>.card.json`` beside it: the same card plus the SHA-256 of the ONNX file itself,
  so a swapped or damaged export is refused like a damaged bundle.

Uses ``torch.onnx.export(dynamo=True)``, the default exporter since torch 2.9 (the TorchScript
one is deprecated), with the batch made dynamic through ``dynamic_shapes``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time (torch and onnx are slow to import)
    import onnx
    import torch
    from torch import nn

    from braintumor.models import LoadedModel

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
TUMOUR_OUTPUT_NAME = "tumour_logits"
FEATURES_OUTPUT_NAME = "features"
META_PREFIX = "braintumor."
SIDECAR_SUFFIX = ".card.json"


def sidecar_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.card.json``."""
    p = Path(onnx_path)
    return p.with_name(p.stem + SIDECAR_SUFFIX)


def metadata_for(loaded: LoadedModel) -> dict[str, str]:
    """The ``metadata_props`` entries (all strings, as ONNX requires) for a loaded bundle."""
    return {
        f"{META_PREFIX}model": loaded.name,
        f"{META_PREFIX}checksum": loaded.checksum,
        f"{META_PREFIX}classes": json.dumps(list(loaded.classes)),
        f"{META_PREFIX}temperature": repr(float(loaded.temperature)),
        f"{META_PREFIX}preprocess": json.dumps(loaded.preprocess.to_dict(), sort_keys=True),
        f"{META_PREFIX}card": json.dumps(loaded.card, sort_keys=True),
    }


def _has_feature_layer(model: nn.Module) -> bool:
    from torch import nn

    return any(isinstance(m, nn.Linear) for m in model.modules())


def _exportable(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A wrapper whose forward returns the graph's outputs in order (:func:`output_names`):
    the exporter traces ``forward``, and a model's ``forward`` gives logits only."""
    from torch import nn

    from braintumor.inference.ood import feature_layer
    from braintumor.models.tumour import has_tumour_head

    tumour = has_tumour_head(model)
    features = _has_feature_layer(model)

    # Defined here so that importing this module does not import torch.
    class GraphOutputs(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self._captured: list[torch.Tensor] = []
            if features:  # the same layer input the PyTorch extractor hooks (ood.py)
                feature_layer(inner).register_forward_pre_hook(self._capture)

        def _capture(self, module: nn.Module, inputs: tuple) -> None:
            self._captured.append(inputs[0])

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            self._captured.clear()
            if tumour:
                out: tuple[torch.Tensor, ...] = tuple(
                    self.inner.forward_with_tumour(x))  # type: ignore[operator]  # checked above
            else:
                out = (self.inner(x),)
            if features:
                feats = self._captured[-1]
                out = (*out, feats.reshape(feats.shape[0], -1))
            return out

    return GraphOutputs(model).eval(), _names(tumour, features)


def _names(tumour: bool, features: bool) -> list[str]:
    return ([OUTPUT_NAME] + ([TUMOUR_OUTPUT_NAME] if tumour else [])
            + ([FEATURES_OUTPUT_NAME] if features else []))


def output_names(loaded: LoadedModel) -> list[str]:
    """The graph's outputs for this bundle: ``logits``, ``tumour_logits`` with a head, then
    ``features`` (every model whose classifier is an ``nn.Linear``)."""
    from braintumor.models.tumour import has_tumour_head

    return _names(has_tumour_head(loaded.model), _has_feature_layer(loaded.model))


def export_model_proto(loaded: LoadedModel, opset: int = OPSET) -> onnx.ModelProto:
    """The ONNX ``ModelProto`` of a :class:`~braintumor.models.LoadedModel`, metadata included."""
    import torch

    model = copy.deepcopy(loaded.model).eval()  # never touch the caller's (maybe shared) model
    model, outputs = _exportable(model)
    size = loaded.preprocess.image_size
    in_ch = int(loaded.card.get("model", {}).get("in_channels", 1))
    example = torch.zeros(2, in_ch, size, size)
    batch = torch.export.Dim("batch", min=1)
    # The exporter logs registry notes (e.g. "torchvision is not installed") and may print
    # progress on stdout; stdout can be a CSV/JSON stream, so both are kept quiet.
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with (warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()),
              torch.no_grad()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), None, dynamo=True, opset_version=opset,
                input_names=[INPUT_NAME], output_names=outputs,
                dynamic_shapes=({0: batch},), external_data=False, verbose=False,
            )
    finally:
        onnx_logger.setLevel(level)
    assert program is not None  # dynamo export without a file returns the program
    proto = program.model_proto
    proto.producer_name = "braintumor"
    del proto.metadata_props[:]
    for key, value in metadata_for(loaded).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def export_onnx_bytes(loaded: LoadedModel, opset: int = OPSET) -> bytes:
    """Serialized ONNX model (used by ``Predictor.load(bundle, backend="onnx")``)."""
    return export_model_proto(loaded, opset).SerializeToString()


def export_onnx(loaded: LoadedModel, out: str | Path, opset: int = OPSET) -> Path:
    """Write ``out`` (.onnx) and its ``.card.json`` sidecar; returns the ONNX path."""
    import onnx

    from braintumor.models.bundle import _atomic_write, sha256_file

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"{out}: the output file name must end in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    proto = export_model_proto(loaded, opset)
    onnx.checker.check_model(proto)
    _atomic_write(out, lambda tmp: onnx.save_model(proto, tmp))
    card = dict(loaded.card)
    card["onnx"] = {
        "file": out.name,
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "opset": opset,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "outputs": output_names(loaded),
        "weights_sha256": loaded.checksum,
    }
    text = json.dumps(card, indent=2) + "\n"
    side = sidecar_path(out)
    _atomic_write(side, lambda tmp: Path(tmp).write_text(text))
    return out
