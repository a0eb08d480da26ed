"""`ScaledNoise`: named Normal sites sampled with scaled noise, their distributions untouched."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_emorl.infer import ScaledNoise


def _program() -> None:
    loc, scale = torch.full((20_000,), 2.0), torch.full((20_000,), 3.0)
    pyro.sample("a", dist.Normal(loc, scale).to_event(1))
    pyro.sample("b", dist.Normal(loc, scale).to_event(1))


@pytest.mark.parametrize("factor", [0.0, 0.5])
def test_named_sites_get_the_scaled_noise_and_keep_their_distribution(factor: float) -> None:
    torch.manual_seed(0)
    with ScaledNoise(factor, {"a"}):
        trace = poutine.trace(_program).get_trace()
    a, b = trace.nodes["a"], trace.nodes["b"]
    # The sample of "a" is loc + factor * scale * N(0, 1): mean 2, standard deviation 3 * factor.
    assert float(a["value"].mean()) == pytest.approx(2.0, abs=0.1)
    assert float(a["value"].std()) == pytest.approx(3.0 * factor, abs=0.05)
    # "b" is not named: the full noise.
    assert float(b["value"].std()) == pytest.approx(3.0, abs=0.05)
    # The density is the site's own, evaluated at the scaled sample.
    normal = dist.Normal(torch.tensor(2.0), torch.tensor(3.0))
    expected = normal.log_prob(a["value"]).sum()
    torch.testing.assert_close(a["fn"].log_prob(a["value"]), expected)


def test_observed_and_replayed_sites_are_left_alone() -> None:
    value = torch.zeros(20_000)

    def observed() -> None:
        pyro.sample("a", dist.Normal(torch.ones(20_000), 1.0).to_event(1), obs=value)

    with ScaledNoise(0.0, {"a"}):
        trace = poutine.trace(observed).get_trace()
    assert torch.equal(trace.nodes["a"]["value"], value)

    guide_trace = poutine.trace(_program).get_trace()
    with ScaledNoise(0.0, {"a"}):
        replayed = poutine.trace(poutine.replay(_program, trace=guide_trace)).get_trace()
    assert torch.equal(replayed.nodes["a"]["value"], guide_trace.nodes["a"]["value"])
