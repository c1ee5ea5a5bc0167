import pytest
import torch

from braintumor.models import create_model
from braintumor.models.tumour import has_tumour_head, tumour_probabilities


def test_tumour_pooling_model_follows_the_contract():
    torch.manual_seed(0)
    model = create_model("braintumor-net", tumour_pooling=True).eval()
    x = torch.rand(2, 1, 64, 64)
    assert has_tumour_head(model)
    logits, prob = tumour_probabilities(model, x)
    assert logits.shape == (2, 4) and prob.shape == (2, 1, 64, 64)
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0
    with torch.no_grad():
        assert torch.allclose(model(x), logits)


def test_plain_model_has_no_tumour_map():
    model = create_model("braintumor-net").eval()
    assert not has_tumour_head(model)
    with pytest.raises(ValueError, match="no tumour head"):
        tumour_probabilities(model, torch.rand(1, 1, 64, 64))
