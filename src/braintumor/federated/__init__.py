"""Federated learning across sites on Flower (``braintumor federated``; the ``federated`` extra).

Above ``training/``: sites train the same model on their own decoded cache, only weights
travel, and the server averages them with Flower's strategies. Everything here but
``partition`` and ``weights`` needs flwr, imported through :func:`require_flwr` so that the
rest of the package (and ``braintumor --help``) works without the extra.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'braintumor[federated]'  (or: pip install -e '.[federated]')"


class FederatedUnavailable(RuntimeError):
    """flwr is not installed; the message says how to install it."""


def require_flwr():
    """The flwr module, or :class:`FederatedUnavailable` with the install command."""
    try:
        import flwr
    except ImportError as exc:
        raise FederatedUnavailable(
            f"braintumor federated needs the Flower framework (flwr), which is not installed: "
            f"{INSTALL_HINT}") from exc
    return flwr
