"""What travels between server and sites: the model's tensors and the spec they belong to.

Only weights leave a site. Every round's instructions carry the server's model spec
(architecture, its arguments, image size, class list), and a site that is set up for
anything else stops with an error naming both sides instead of averaging weights that mean
different things (a reordered class list would swap classes silently).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn


class FederationMismatchError(ValueError):
    """A site whose model, image size or classes differ from the server's."""


@dataclass(frozen=True)
class ModelSpec:
    architecture: str
    image_size: int
    classes: tuple[str, ...]
    model_kwargs: dict = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        d = json.loads(text)
        return cls(d["architecture"], int(d["image_size"]), tuple(d["classes"]),
                   dict(d.get("model_kwargs") or {}))

    def describe(self) -> str:
        kw = f" {self.model_kwargs}" if self.model_kwargs else ""
        return (f"{self.architecture}{kw} at {self.image_size} px on classes "
                f"{', '.join(self.classes)}")


def check_same_spec(server: ModelSpec, site: ModelSpec, site_name: str) -> None:
    """Raise :class:`FederationMismatchError` saying what differs between the two."""
    diffs = []
    if (server.architecture, server.model_kwargs) != (site.architecture, site.model_kwargs):
        def arch(s: ModelSpec) -> str:
            return f"{s.architecture} {s.model_kwargs}" if s.model_kwargs else s.architecture

        diffs.append(f"model architecture: server {arch(server)}, site {arch(site)}")
    if server.image_size != site.image_size:
        diffs.append(f"image size: server {server.image_size} px, site {site.image_size} px")
    if tuple(server.classes) != tuple(site.classes):
        diffs.append(f"classes: server [{', '.join(server.classes)}], site "
                     f"[{', '.join(site.classes)}]")
    if diffs:
        raise FederationMismatchError(
            f"site {site_name} does not match the server ({'; '.join(diffs)}); start the site "
            "with the server's --model/--image-size/--config and a dataset of the same classes")


def model_arrays(model: nn.Module) -> list[np.ndarray]:
    """The full state (batch-norm statistics included), in ``state_dict`` order."""
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def load_arrays(model: nn.Module, arrays: list[np.ndarray], spec: ModelSpec) -> None:
    """Set ``model`` from arrays; a count or shape that does not fit is a mismatch error.

    Averaging turns integer buffers (batch-norm's ``num_batches_tracked``) into floats; they
    are cast back to the model's own dtype here.
    """
    state = model.state_dict()
    if len(arrays) != len(state):
        raise FederationMismatchError(
            f"received {len(arrays)} tensors, but {spec.describe()} has {len(state)}: the "
            "server's model architecture differs from this one")
    new = {}
    for (k, v), a in zip(state.items(), arrays, strict=True):
        if tuple(a.shape) != tuple(v.shape):
            raise FederationMismatchError(
                f"tensor {k}: received shape {tuple(a.shape)}, {spec.describe()} needs "
                f"{tuple(v.shape)}: the server's model architecture differs from this one")
        new[k] = torch.from_numpy(np.asarray(a)).to(v.dtype)
    model.load_state_dict(new)


def arrays_bytes(arrays: list[np.ndarray]) -> int:
    return int(sum(np.asarray(a).nbytes for a in arrays))
