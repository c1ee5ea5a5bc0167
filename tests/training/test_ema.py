import pytest
import torch

from braintumor.training.ema import WarmupEMA, warmup_ema


def test_decay_warms_up_then_stays_at_its_ceiling():
    avg, cur = torch.zeros(3), torch.ones(3)
    first = warmup_ema(avg, cur, torch.tensor(0), decay=0.998)  # d = 1/10: follows the weights
    assert torch.allclose(first, torch.full((3,), 0.9))
    late = warmup_ema(avg, cur, torch.tensor(100_000), decay=0.998)  # d capped at 0.998
    assert torch.allclose(late, torch.full((3,), 0.002))


def test_average_of_constant_weights_is_those_weights():
    avg = torch.tensor([5.0])
    for n in range(50):
        avg = warmup_ema(avg, torch.tensor([2.0]), torch.tensor(n), decay=0.9)
    assert torch.allclose(avg, torch.tensor([2.0]), atol=1e-3)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_bad_decay_is_refused(decay):
    with pytest.raises(ValueError, match="EMA decay"):
        WarmupEMA(decay)
