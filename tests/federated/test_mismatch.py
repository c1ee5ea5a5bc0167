"""Server and site must agree on model, image size and classes, or the site says why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from braintumor.federated.weights import (
    FederationMismatchError,
    ModelSpec,
    check_same_spec,
    load_arrays,
    model_arrays,
)
from braintumor.models import create_model

FOUR = ("glioma", "meningioma", "notumor", "pituitary")
SERVER = ModelSpec("braintumor-net", 32, FOUR)


@pytest.mark.parametrize("site, message", [
    (ModelSpec("paper-cnn", 32, FOUR), "model architecture: server braintumor-net, site "
                                       "paper-cnn"),
    (ModelSpec("braintumor-net", 64, FOUR), "image size: server 32 px, site 64 px"),
    (ModelSpec("braintumor-net", 32, ("glioma", "notumor")),
     "classes: server [glioma, meningioma, notumor, pituitary], site [glioma, notumor]"),
    (ModelSpec("braintumor-net", 32, FOUR, {"depths": [1, 1, 1, 1]}), "depths"),
])
def test_each_difference_is_named(site, message):
    with pytest.raises(FederationMismatchError, match="site hospital-a does not match") as e:
        check_same_spec(SERVER, site, "hospital-a")
    assert message in str(e.value)
    check_same_spec(SERVER, SERVER, "hospital-a")  # the same spec passes


def test_weights_of_another_architecture_are_refused():
    mine = create_model("braintumor-net", num_classes=4, image_size=32)
    other = model_arrays(create_model("paper-cnn", num_classes=4, image_size=32))
    with pytest.raises(FederationMismatchError, match="architecture differs"):
        load_arrays(mine, other, SERVER)
    arrays = model_arrays(mine)
    arrays[-3] = np.zeros((7, *arrays[-3].shape[1:]), arrays[-3].dtype)
    with pytest.raises(FederationMismatchError, match="received shape"):
        load_arrays(mine, arrays, SERVER)


def test_averaged_integer_buffers_are_cast_back():
    model = create_model("braintumor-net", num_classes=4, image_size=32)
    arrays = [a.astype(np.float64) for a in model_arrays(model)]  # as FedAvg returns them
    load_arrays(model, arrays, SERVER)
    assert all(v.dtype == torch.int64 for k, v in model.state_dict().items()
               if k.endswith("num_batches_tracked"))


def test_site_client_refuses_a_server_of_other_classes(tmp_path):
    pytest.importorskip("flwr", reason="flwr not installed: pip install -e '.[federated]'")
    from braintumor.federated.client import SiteClient
    from braintumor.federated.site import SiteTrainer
    from braintumor.training.config import TrainConfig

    cfg = TrainConfig(image_size=32)
    trainer = SiteTrainer("hospital-b", cfg, list(FOUR), np.zeros((8, 32, 32), np.uint8),
                          np.arange(8) % 4)
    client = SiteClient(trainer)
    server = ModelSpec("braintumor-net", 32, ("tumour", "notumor"))
    with pytest.raises(FederationMismatchError, match="classes: server .tumour, notumor."):
        client.fit(client.get_parameters({}), {"spec": server.to_json(), "local_epochs": 1,
                                               "lr": 1e-3})
