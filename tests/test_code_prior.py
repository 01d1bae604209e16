"""The causal transformer and the code prior (unigm.autoregressive.transformer).

Oracles: causality from gradients (no output depends on its own input or a later one); the exact
likelihood summed over every sequence of a small vocabulary is 1; sampling follows the model's
conditionals and costs one evaluation per token; trained on sequences whose entropy is known in
closed form (a uniform first token that the others copy or combine), the prior's NLL reaches that
entropy, far below an independent-token model's."""
import itertools
import math

import pytest
import torch

from unigm import samplers, zoo
from unigm.autoregressive import CausalTransformer, CodePrior
from unigm.tensors import ShapeError
from unigm.train import fit


def test_no_output_depends_on_its_input_or_a_later_one():
    torch.manual_seed(0)
    net = CausalTransformer(length=6, in_features=3, out_features=2, width=16, depth=2, heads=2).double()
    for i in range(6):
        x = torch.randn(1, 6, 3, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(net(x)[0, i].sum(), x)
        seen = grad[0].abs().sum(1) != 0
        assert torch.equal(seen, torch.arange(6) < i), (i, seen)  # every earlier input, nothing else
    with pytest.raises(ValueError, match="length 6"):
        net(torch.zeros(1, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="multiple of heads"):
        CausalTransformer(4, 1, 1, width=10, heads=4)


def test_the_likelihood_sums_to_one_over_every_sequence():
    torch.manual_seed(0)
    model = zoo.make("code_prior", (3,), vocab=4, width=16, heads=2).double()
    every = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float64)
    with torch.no_grad():
        assert abs(model.log_prob(every).logsumexp(0).item()) < 1e-10


def test_sampling_costs_one_evaluation_per_token_and_follows_the_model():
    torch.manual_seed(0)
    model = zoo.make("code_prior", (4,), vocab=5, width=16, heads=2)
    with samplers.count_nfe() as nfe:
        codes = model.sample(4000, generator=torch.Generator().manual_seed(1))
    assert nfe.count == 4 and codes.shape == (4000, 4) and set(codes.unique().tolist()) <= set(range(5))
    with torch.no_grad():
        p_first = torch.softmax(model.logits(torch.zeros(1, 4))[0, 0], dim=0)  # depends on nothing
    frequency = torch.bincount(codes[:, 0].long(), minlength=5) / 4000
    assert (frequency - p_first).abs().max() < 4 * (0.25 / 4000) ** 0.5
    assert torch.equal(codes, model.sample(4000, generator=torch.Generator().manual_seed(1)))


def test_the_prior_learns_dependent_tokens_down_to_their_entropy():
    """c0 uniform on 8 tokens, c1 = c0, c2 = (c0 + 3) mod 8: the sequence has entropy log 8; tokens
    drawn independently from the same marginals cost 3 log 8."""
    g = torch.Generator().manual_seed(0)
    c0 = torch.randint(8, (4096,), generator=g)
    data = torch.stack([c0, c0, (c0 + 3) % 8], dim=1).float()
    torch.manual_seed(0)
    model = zoo.make("code_prior", (3,), vocab=8, width=32, heads=2)
    fit(model, data, steps=300, batch_size=128, lr=3e-3, progress=False)
    with torch.no_grad():
        nll = -model.log_prob(data[:1024]).mean().item()
    assert nll < math.log(8) + 0.05, nll  # the entropy, 2.079 nats; independent tokens: 6.238
    samples = model.sample(500, generator=torch.Generator().manual_seed(2))
    assert (samples[:, 1] == samples[:, 0]).float().mean() > 0.97
    assert (samples[:, 2] == (samples[:, 0] + 3) % 8).float().mean() > 0.97


def test_clear_errors():
    model = zoo.make("code_prior", (4,), vocab=5, width=16, heads=2)
    with pytest.raises(ValueError, match=r"integers 0 \.\. 4"):
        model.log_prob(torch.full((2, 4), 5.0))
    with pytest.raises(ValueError, match=r"integers 0 \.\. 4"):
        model.log_prob(torch.full((2, 4), 0.5))
    with pytest.raises(ShapeError, match="expects a batch of shape"):
        model.log_prob(torch.zeros(2, 3))
    with pytest.raises(ShapeError, match="sequences of tokens"):
        zoo.make("code_prior", (2, 2))
    with pytest.raises(ValueError, match="steps must be None"):
        model.sample(2, steps=3)
    assert isinstance(model, CodePrior)
