"""MAR: masked autoregressive generation of continuous tokens with a per-token diffusion head
(Li, Tian, Li, Deng & He 2024, "Autoregressive Image Generation without Vector Quantization",
arXiv:2406.11838), at toy scale on 8x8 images.

Tokens. The image is cut into 2x2 patches: 16 tokens of 4 values each, scaled from [0, 1] to [-1, 1].
(4x4 patches would leave 4 tokens, too few for the order and the number of iterations to matter,
and the head would face a 16-dimensional distribution, nearly the whole image; 1x1 patches would make
64 one-pixel tokens and the transformer the whole model. 2x2 keeps both parts doing real work.)
No vector quantisation: a token is a point of R^4.

The model, p(x) = prod_k p(x_{S_k} | x_{S_<k}) over a random order split into K groups S_k:
- a bidirectional transformer (nets.transformer_stack, no attention mask) reads every position: the
  embedded token where it is known, a learned mask embedding where it is not, plus a learned position.
  Its output z_i at each position is the condition of that token (Sec. 3.4, "masked autoregression";
  one transformer instead of the paper's MAE encoder-decoder pair).
- a small MLP "diffusion head" eps_theta(x_t, t, z_i) models p(x_i | z_i) by DDPM on a single token
  (Sec. 3.2-3.3): the loss is L(z, x) = E_{t, eps} |eps - eps_theta(sqrt(a_t) x + sqrt(1 - a_t) eps, t, z)|^2
  (eq. 2), a = alpha_bar of the course's linear VP schedule (unigm.schedules), t on the grid i / T.
  Its gradient is what trains the transformer too: z is the only way information reaches the head.
Training (Sec. 3.4): per image a masking ratio r ~ U(0, 1] (the paper draws a truncated Gaussian on
[0.7, 1]) and a random order; the first ceil(r L) positions of the order are masked; the loss is the
head's loss on the masked positions, with `noise_draws` draws of (t, eps) per token (the paper's 4).
Sampling: K iterations; iteration k runs the transformer once, then the head's reverse diffusion
(respaced ancestral DDPM, `head_steps` steps) for the tokens revealed at k. How many are revealed
follows the cosine schedule: after iteration k, floor(L cos(pi/2 (k + 1) / K)) tokens stay masked.

NFE: `nfe(steps)` gives transformer and head evaluations per sampling call, K and K * head_steps; a head
evaluation processes only the tokens revealed in its iteration. `cost()` gives their sizes
(parameters, multiply-adds per image).
No likelihood: log_prob raises NotImplementedError (the per-token diffusion loss bounds each factor
of a random-order factorisation, but not log p(x) of one fixed model).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .. import samplers
from ..base import Implicit
from ..nets import MLP, transformer_stack
from ..registry import register
from ..schedules import alpha_bar_vp_linear
from ..tensors import ShapeError, per_example, rand, randint, randn_like


def reveal_counts(length: int, iterations: int) -> list[int]:
    """How many tokens each of K = `iterations` sampling iterations reveals, out of `length`.

    After iteration k (k = 0 .. K-1) floor(L cos(pi/2 (k + 1) / K)) tokens stay masked (the cosine
    schedule of MaskGIT, Chang et al. 2022, arXiv:2202.04200, used by MAR), kept at least one below
    the previous count so that every iteration reveals a token. Sums to L for any 1 <= K <= L."""
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or not 1 <= iterations <= length:
        raise ValueError(f"iterations must be an int in [1, {length}] (each iteration reveals at least one of the "
                         f"{length} tokens), got {iterations!r}")
    masked, counts = length, []
    for k in range(iterations):
        left = math.floor(length * math.cos(math.pi / 2 * (k + 1) / iterations) + 1e-9)
        left = max(min(left, masked - 1), iterations - k - 1)  # reveal >= 1 now and leave >= 1 per later iteration
        counts.append(masked - left)
        masked = left
    return counts


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, C p^2) tokens, L = (H / p)(W / p), patches in raster order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpatchify(tokens: torch.Tensor, shape: tuple[int, int, int], patch: int) -> torch.Tensor:
    """patchify's inverse: (B, L, C p^2) -> (B, C, H, W)."""
    c, h, w = shape
    x = tokens.reshape(tokens.shape[0], h // patch, w // patch, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(tokens.shape[0], c, h, w)


class DiffusionHead(nn.Module):
    """eps_theta(x_t, t, z): (N, D), (N,), (N, Z) -> (N, D), an MLP on [x_t, z, embed(t)] (the paper's head
    is a residual MLP with AdaLN conditioning; concatenation does at this size)."""

    def __init__(self, token_dim: int, condition_dim: int, hidden: int, depth: int, time_dim: int):
        super().__init__()
        self.net = MLP(token_dim + condition_dim, token_dim, hidden, depth, time_dim=time_dim)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t, z], dim=-1), t)


class MaskedTransformer(nn.Module):
    """tokens (B, L, D), known (B, L) bool -> conditions z (B, L, width). Unknown tokens are replaced by a
    learned mask embedding before anything else, so z never depends on their values."""

    def __init__(self, length: int, token_dim: int, width: int, depth: int, heads: int, dropout: float):
        super().__init__()
        self.length = length
        self.embed = nn.Linear(token_dim, width)
        self.mask_embedding = nn.Parameter(0.02 * torch.randn(width))
        self.position = nn.Parameter(0.02 * torch.randn(length, width))
        self.blocks = transformer_stack(width, depth, heads, dropout)  # bidirectional: no attention mask
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        h = torch.where(known[..., None], self.embed(tokens), self.mask_embedding)  # (B, L, width)
        return self.norm(self.blocks(h + self.position))


@dataclass
class MARConfig:
    patch: int = 2  # 2x2 patches: 16 tokens of 4 values on 8x8 images
    width: int = 64  # the transformer
    depth: int = 3
    heads: int = 4
    dropout: float = 0.1
    head_hidden: int = 128  # the diffusion head (an MLP)
    head_depth: int = 3
    time_dim: int = 32
    num_steps: int = 1000  # T of the head's DDPM chain
    beta_min: float = 0.1
    beta_max: float = 20.0
    noise_draws: int = 4  # (t, eps) draws per masked token and training step (the paper's 4)
    iterations: int = 8  # K, sampling iterations (transformer evaluations); `sample(steps=K)` overrides it
    head_steps: int = 100  # reverse-diffusion steps of the head per iteration (respaced from T)


@register("mar")  # an image model: no 2D recipe
class MAR(Implicit):
    """Masked autoregressive model of continuous 2x2-patch tokens with a per-token DDPM head (module docstring).

    Trained with a diffusion loss (a bound per token), but its samples come from a process without a
    tractable likelihood, hence Implicit."""

    Config = MARConfig

    def __init__(self, event_shape, config: MARConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        if len(self.event_shape) != 3:
            raise ShapeError(f"MAR models images (C, H, W), got event_shape {self.event_shape}")
        c, h, w = self.event_shape
        if h % config.patch or w % config.patch:
            raise ShapeError(f"patch {config.patch} must divide the image size {h}x{w}")
        if config.noise_draws < 1:
            raise ValueError(f"noise_draws must be >= 1, got {config.noise_draws}")
        self.length, self.token_dim = (h // config.patch) * (w // config.patch), c * config.patch**2
        reveal_counts(self.length, config.iterations)  # a bad default K fails here
        self.transformer = MaskedTransformer(self.length, self.token_dim, config.width, config.depth, config.heads,
                                             config.dropout)
        self.head = DiffusionHead(self.token_dim, config.width, config.head_hidden, config.head_depth,
                                  config.time_dim)

    # -- tokens -------------------------------------------------------------------------------
    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:  # images in [0, 1] (B, C, H, W) -> (B, L, D) in [-1, 1]
        return patchify(2 * x - 1, self.config.patch)

    def to_images(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, C, H, W) in [0, 1]
        return ((unpatchify(tokens, self.event_shape, self.config.patch) + 1) / 2).clamp(0, 1)

    def alpha_bar(self, t):
        return alpha_bar_vp_linear(t, self.config.beta_min, self.config.beta_max)

    # -- orders and masks -------------------------------------------------------------------------
    def random_order(self, n: int, like: torch.Tensor, generator=None) -> torch.Tensor:
        """(n, L): a uniformly random permutation of the positions per row (argsort of uniform noise)."""
        return rand((n, self.length), like, generator).argsort(dim=1)

    def reveal_plan(self, n: int, iterations: int, like: torch.Tensor, generator=None) -> torch.Tensor:
        """(n, L) long: the iteration 0 .. K-1 at which each position is revealed; per row a random order is
        cut into consecutive groups of reveal_counts(L, K) positions."""
        counts = torch.tensor(reveal_counts(self.length, iterations), device=like.device)
        step_of_rank = torch.repeat_interleave(torch.arange(iterations, device=like.device), counts)  # (L,)
        order = self.random_order(n, like, generator)  # order[b, r] = position with rank r
        plan = torch.empty_like(order)
        plan.scatter_(1, order, step_of_rank.expand(n, -1))
        return plan

    def training_mask(self, n: int, like: torch.Tensor, generator=None) -> torch.Tensor:
        """(n, L) bool, True = masked: ratio r ~ U(0, 1], the first ceil(r L) positions of a random order."""
        ratio = 1 - rand((n,), like, generator)  # (0, 1]
        masked_count = torch.ceil(ratio * self.length).clamp(1, self.length)  # (n,)
        ranks = self.random_order(n, like, generator).argsort(dim=1)  # rank of each position in the order
        return ranks < masked_count[:, None]

    # -- the loss ---------------------------------------------------------------------------------
    def head_loss(self, tokens: torch.Tensor, z: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The diffusion loss of eq. 2 for N tokens (N, D) with conditions (N, Z), times (N,), noise (N, D):
        the mean over tokens and dimensions of |eps - eps_theta(sqrt(a_t) x + sqrt(1 - a_t) eps, t, z)|^2."""
        a = per_example(self.alpha_bar(t), tokens)
        x_t = a.sqrt() * tokens + (1 - a).sqrt() * eps
        return (eps - self.head(x_t, t, z)).pow(2).mean()

    def loss(self, x, *, generator=None):
        """Mask a random subset per image, condition the unknown positions on the known ones, and score
        the masked tokens with the head's DDPM loss (noise_draws draws of t_i = i / T and eps each)."""
        tokens = self.to_tokens(self.check_input(x))  # (B, L, D)
        masked = self.training_mask(len(tokens), tokens, generator)
        z = self.transformer(tokens, ~masked)  # (B, L, width)
        targets, conditions = tokens[masked], z[masked]  # (N, D), (N, width)
        r = self.config.noise_draws
        targets, conditions = targets.repeat(r, 1), conditions.repeat(r, 1)
        t = randint(1, self.config.num_steps + 1, (len(targets),), targets, generator).to(targets.dtype)
        return self.head_loss(targets, conditions, t / self.config.num_steps, randn_like(targets, generator))

    # -- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_tokens(self, z: torch.Tensor, steps: int | None = None, generator=None) -> torch.Tensor:
        """Draw one token per condition z (N, Z) from the head: respaced ancestral DDPM (samplers.ddim with
        eta = 1) from N(0, I) at t = 1 down to t = 0 in `steps` head evaluations. -> (N, D)."""
        steps = self.config.head_steps if steps is None else steps
        x = self.randn(len(z), self.token_dim, generator=generator)
        times = samplers.respaced_times(self.config.num_steps, steps)
        return samplers.ddim(lambda x_t, t: self.head(x_t, t, z), x, None, self.alpha_bar, eta=1.0,
                             generator=generator, times=times)

    def nfe(self, steps: int | None = None, head_steps: int | None = None) -> dict[str, int]:
        """Network evaluations of one sample() call (whatever n): K transformer passes and K * head_steps
        head passes (each over the tokens revealed in its iteration only)."""
        k = self.config.iterations if steps is None else steps
        return {"transformer": k, "head": k * (self.config.head_steps if head_steps is None else head_steps)}

    def cost(self) -> dict[str, int]:
        """Sizes of the two networks: parameters, and multiply-adds per image of one transformer pass (all L
        tokens, linear layers and attention products) and of one head pass over all L tokens (over L / K
        tokens on average in one sampling iteration)."""
        c = self.config
        transformer_linear = sum(m.weight.numel() for m in self.transformer.modules() if isinstance(m, nn.Linear))
        transformer_linear += sum(layer.self_attn.in_proj_weight.numel() for layer in self.transformer.blocks.layers)
        attention = c.depth * 2 * self.length**2 * c.width  # q k^T and attention-weighted values
        head_linear = sum(m.weight.numel() for m in self.head.modules() if isinstance(m, nn.Linear))
        return {"transformer_parameters": sum(p.numel() for p in self.transformer.parameters()),
                "head_parameters": sum(p.numel() for p in self.head.parameters()),
                "transformer_macs_per_pass": self.length * transformer_linear + attention,
                "head_macs_per_pass": self.length * head_linear}

    @torch.no_grad()
    def sample(self, n, steps=None, *, head_steps: int | None = None, generator=None):
        """K = `steps` (default config.iterations) iterations; each runs the transformer on what is known and
        the head's reverse diffusion (`head_steps`, default config.head_steps) for the tokens it reveals, in a
        random order with the cosine schedule of reveal_counts. -> (n, C, H, W) in [0, 1]."""
        n = self.check_n(n)
        k = self.config.iterations if steps is None else steps
        like = torch.empty((), device=self.device, dtype=self.dtype)
        plan = self.reveal_plan(n, k, like, generator)  # validates K
        tokens = torch.zeros(n, self.length, self.token_dim, device=self.device, dtype=self.dtype)
        for step in range(k):
            z = self.transformer(tokens, plan < step)
            now = plan == step  # (n, L), the same count in every row
            tokens[now] = self.sample_tokens(z[now], head_steps, generator)
        return self.to_images(tokens)

    def log_prob(self, x):
        raise NotImplementedError(
            "MAR has no exact likelihood: its diffusion loss bounds each token's conditional in one random "
            "order, and p(x) would need the order marginalised and a likelihood ODE per token")
