"""The Flower client of a site: receives the global weights, trains locally, sends weights.

Nothing but the model's tensors and a few scalar metrics (loss, counts, accuracy on the
site's own validation images) leaves the site; images and labels never do.
"""

from __future__ import annotations

from flwr.client import NumPyClient

from braintumor.federated.site import SiteTrainer
from braintumor.federated.weights import ModelSpec, check_same_spec, model_arrays


class SiteClient(NumPyClient):
    def __init__(self, trainer: SiteTrainer):
        self.trainer = trainer

    def _check(self, config) -> None:
        """Every instruction carries the server's spec; a site set up otherwise refuses."""
        if "spec" not in config:
            raise ValueError("the server sent no model spec: is it a braintumor federated "
                             "server?")
        check_same_spec(ModelSpec.from_json(str(config["spec"])), self.trainer.spec,
                        self.trainer.name)

    def get_parameters(self, config):
        return model_arrays(self.trainer.module.model)

    def fit(self, parameters, config):
        self._check(config)
        result = self.trainer.fit(parameters, int(config["local_epochs"]), float(config["lr"]),
                                  float(config.get("proximal_mu", 0.0)),
                                  int(config.get("round", 0)))
        return result.arrays, result.num_examples, result.metrics

    def evaluate(self, parameters, config):
        self._check(config)
        m = self.trainer.validate(parameters)
        return 0.0, int(m.get("val_images", 0)), m


def start_site_client(address: str, trainer: SiteTrainer,
                      root_certificates: bytes | None = None) -> None:
    """Connect to a server and serve rounds until it says the federation is over.

    flwr 1.32's ``start_client`` (gRPC, deprecated since 1.13 in favour of a SuperNode
    process, but self-contained and offline): the SuperLink/SuperNode route needs a Flower
    app packaged as a FAB and a third process, for the same wire protocol.
    """
    try:
        from flwr.compat.client.app import start_client
    except ImportError:  # flwr versions that still export it at the top
        from flwr.client import start_client
    start_client(server_address=address, client=SiteClient(trainer).to_client(),
                 insecure=root_certificates is None, root_certificates=root_certificates,
                 max_retries=30, max_wait_time=120.0)
