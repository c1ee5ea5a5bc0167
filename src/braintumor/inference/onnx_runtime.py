"""Run an exported model on onnxruntime, with the metadata the export carried.

Only the forward pass happens here; reading, preprocessing and the temperature are the
Predictor's shared code, so PyTorch and ONNX Runtime answers differ only by float rounding.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from braintumor.data.preprocess import PreprocessConfig
from braintumor.inference.onnx_export import (
    FEATURES_OUTPUT_NAME,
    META_PREFIX,
    TUMOUR_OUTPUT_NAME,
    sidecar_path,
)


@dataclass(frozen=True)
class OnnxMeta:
    name: str
    checksum: str  # SHA-256 of the PyTorch weights the graph was exported from
    classes: list[str]
    temperature: float
    preprocess: PreprocessConfig
    card: dict


def _meta_from_card(card: dict, source: str) -> OnnxMeta:
    try:
        return OnnxMeta(
            name=card["model"]["name"],
            checksum=card.get("onnx", {}).get("weights_sha256") or card["weights"]["sha256"],
            classes=list(card["classes"]),
            temperature=float(card.get("temperature", 1.0)),
            preprocess=PreprocessConfig.from_dict(card.get("preprocess", {})),
            card=card,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{source}: model card lacks {exc}; not a braintumor export") from exc


def _meta_from_props(props: dict[str, str], source: str) -> OnnxMeta | None:
    if f"{META_PREFIX}model" not in props:
        return None
    try:
        card = json.loads(props.get(f"{META_PREFIX}card", "{}"))
        return OnnxMeta(
            name=props[f"{META_PREFIX}model"],
            checksum=props[f"{META_PREFIX}checksum"],
            classes=list(json.loads(props[f"{META_PREFIX}classes"])),
            temperature=float(props[f"{META_PREFIX}temperature"]),
            preprocess=PreprocessConfig.from_dict(json.loads(props[f"{META_PREFIX}preprocess"])),
            card=card,
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{source}: damaged braintumor metadata in the ONNX file ({exc})") from exc


class OnnxModel:
    """An onnxruntime session plus the model's name, checksum, classes and preprocessing."""

    def __init__(self, session, meta: OnnxMeta, source: str):
        self.session = session
        self.meta = meta
        self.source = source
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name
        names = [o.name for o in session.get_outputs()]
        # A graph exported from a model with a tumour head carries its map as a second output.
        self._tumour_output = TUMOUR_OUTPUT_NAME if TUMOUR_OUTPUT_NAME in names else None
        # The OOD check's features (the classifier's input); absent from older exports.
        self._features_output = FEATURES_OUTPUT_NAME if FEATURES_OUTPUT_NAME in names else None

    @property
    def has_tumour_head(self) -> bool:
        """Whether the graph returns ``tumour_logits`` beside the class logits."""
        return self._tumour_output is not None

    @property
    def has_features(self) -> bool:
        """Whether the graph returns ``features`` (exports made before it was added do not)."""
        return self._features_output is not None

    @staticmethod
    def _session(model: str | bytes, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int | None = None) -> OnnxModel:
        """Open ``path``; metadata from the file itself, else ``<name>.card.json`` / ``card.json``.

        When the sidecar card records the ONNX file's SHA-256, a mismatch is refused
        (:class:`~braintumor.models.ModelIntegrityError`), as for bundles.
        """
        from braintumor.models.bundle import CARD_NAME, ModelIntegrityError, sha256_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        side = sidecar_path(path)
        side_card = json.loads(side.read_text()) if side.is_file() else None
        if side_card and side_card.get("onnx", {}).get("sha256"):
            digest = sha256_file(path)
            if digest != side_card["onnx"]["sha256"]:
                raise ModelIntegrityError(
                    f"{path}: SHA-256 {digest[:12]}… does not match {side.name}'s "
                    f"{side_card['onnx']['sha256'][:12]}…; refusing a file that is not the export "
                    "the card describes"
                )
        try:
            session = cls._session(str(path), threads)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ValueError(f"{path}: onnxruntime cannot load this file ({exc})") from exc
        props = dict(session.get_modelmeta().custom_metadata_map)
        meta = _meta_from_props(props, str(path))
        if meta is None:
            fallback = side if side_card else path.parent / CARD_NAME
            if not fallback.is_file():
                raise ValueError(
                    f"{path}: no braintumor metadata in the file and no {side.name} or "
                    f"{CARD_NAME} beside it; export it with `braintumor export`"
                )
            meta = _meta_from_card(side_card or json.loads(fallback.read_text()), str(fallback))
        return cls(session, meta, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str, threads: int | None = None) -> OnnxModel:
        """A session over an in-memory export (``braintumor.inference.onnx_export``)."""
        session = cls._session(data, threads)
        meta = _meta_from_props(dict(session.get_modelmeta().custom_metadata_map), source)
        if meta is None:
            raise ValueError(f"{source}: in-memory ONNX model has no braintumor metadata")
        return cls(session, meta, source)

    def logits(self, images_u8: np.ndarray) -> np.ndarray:
        """(N, S, S) uint8 -> (N, C) float32, scaled exactly like ``to_model_input``."""
        return self.session.run([self._output], {self._input: _model_input(images_u8)})[0]

    def logits_and_tumour(self, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S) uint8 -> logits (N, C) and tumour logits (N, 1, h, w), one run.

        ``ValueError`` for a graph without the tumour output (a plain classifier's export).
        """
        if self._tumour_output is None:
            raise ValueError(f"{self.source}: this ONNX model has no {TUMOUR_OUTPUT_NAME!r} "
                             "output (exported from a model without a tumour head)")
        logits, tumour = self.session.run([self._output, self._tumour_output],
                                          {self._input: _model_input(images_u8)})
        return logits, tumour

    def logits_and_features(self, images_u8: np.ndarray, tumour: bool = False
                            ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(N, S, S) uint8 -> logits (N, C), tumour logits (N, 1, h, w; None unless
        ``tumour``) and the OOD features (N, D), all from one run.

        ``ValueError`` for a graph without the features output (an export made before it
        existed) or, with ``tumour``, without the tumour output.
        """
        if self._features_output is None:
            raise ValueError(f"{self.source}: this ONNX model has no {FEATURES_OUTPUT_NAME!r} "
                             "output (exported by an older braintumor; export it again)")
        names = [self._output, self._features_output]
        if tumour:
            if self._tumour_output is None:
                raise ValueError(f"{self.source}: this ONNX model has no "
                                 f"{TUMOUR_OUTPUT_NAME!r} output (exported from a model "
                                 "without a tumour head)")
            names.append(self._tumour_output)
        out = self.session.run(names, {self._input: _model_input(images_u8)})
        return out[0], (out[2] if tumour else None), out[1]


def _model_input(images_u8: np.ndarray) -> np.ndarray:
    x = np.asarray(images_u8)
    if x.ndim == 2:
        x = x[None]
    # Same arithmetic as to_model_input (float32 then divide by 255) so that the two
    # backends see bit-identical inputs.
    return (x.astype(np.float32) / np.float32(255.0))[:, None]
