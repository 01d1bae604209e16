"""Transfusion (Zhou et al. 2024, arXiv:2408.11039): one transformer that predicts the next text token and
denoises image patches, at toy scale on the 8x8 digits and their captions "zero" .. "nine".

A sequence mixes discrete text tokens and continuous image tokens (Sec. 3):
    text to image   BOS word EOS BOI [16 noisy patches] EOI
    image to text   BOS BOI [16 clean patches] EOI word EOS
The words are one token each (vocabulary: the ten digit names, then BOS, EOS, BOI, EOI and NULL, the
dropped caption of classifier-free guidance). An image is cut into 2x2 patches (16 tokens of 4 values
in [-1, 1]), linearly embedded, plus an embedding of its diffusion time t (one t for the whole image,
as in the paper). Attention is causal across the sequence and bidirectional inside the image block
(Sec. 3, Fig. 4; `transfusion_mask`). Two linear heads read every position: next-token logits and the
noise eps of the image tokens. The loss (Sec. 3, eq. 4) is

    L = L_LM + lambda L_DDPM,    L_LM = mean CE of every text token given what precedes it,
                                 L_DDPM = E |eps - eps_theta(x_t, t, caption)|^2 (Ho et al. 2020, eq. 14),

with the paper's lambda = 5 and x_t = sqrt(alpha_bar(t)) x_0 + sqrt(1 - alpha_bar(t)) eps on the course's
linear VP schedule (unigm.schedules; t = i / T, i uniform in 1..T). As in the paper (Sec. 4.1), 80% of
each batch is text-to-image, 20% image-to-text. An image that comes first is the captioning condition: it
enters CLEAN (t = 0) and carries no diffusion loss (the paper noises it lightly in some runs; clean is what
captioning sees). 10% of the text-to-image captions are replaced by NULL in training, so that sampling can use
classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598; the paper samples with it too), w = 3 by default.

Generation: caption -> digit runs the reverse chain (DDPM ancestral = DDIM with eta 1, unigm.samplers) on
the 16 image tokens after "BOS word EOS BOI", one transformer pass over the whole sequence per step;
image -> caption decodes greedily after "BOS BOI [clean patches] EOI".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import samplers
from ..base import Conditional, ScoreBased
from ..nets import SinusoidalTimeEmbedding, transformer_stack
from ..registry import register
from ..schedules import alpha_bar_vp_linear
from ..tensors import ShapeError, as_time, per_example, rand, randint, randn_like

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BOS, EOS, BOI, EOI, NULL = range(len(WORDS), len(WORDS) + 5)  # 10 .. 14
VOCAB = len(WORDS) + 5
SPECIAL = {BOS: "<bos>", EOS: "<eos>", BOI: "<boi>", EOI: "<eoi>", NULL: "<null>"}
IGNORE = -100  # a target that is not a text token (an image position): no next-token loss


def tokenize(captions) -> torch.Tensor:
    """Captions (a string or a list of them, each a digit's name) -> their word tokens, (N,) long."""
    if isinstance(captions, str):
        captions = [captions]
    tokens = []
    for caption in captions:
        word = caption.strip().lower() if isinstance(caption, str) else caption
        if word not in WORDS:
            raise ValueError(f"unknown caption {caption!r}; the vocabulary is {', '.join(WORDS)}")
        tokens.append(WORDS.index(word))
    return torch.tensor(tokens, dtype=torch.long)


def detokenize(tokens) -> list[str]:
    """Word tokens (N,) -> captions; the inverse of `tokenize`."""
    return [WORDS[int(t)] if 0 <= int(t) < len(WORDS) else SPECIAL.get(int(t), "<unk>") for t in tokens]


def transfusion_mask(length: int, image_start: int, image_length: int) -> torch.Tensor:
    """(L, L) bool, True where query i may attend to key j: j <= i (causal), or i and j both in the image block
    [image_start, image_start + image_length) (bidirectional within an image; Zhou et al. 2024, Fig. 4)."""
    if not 0 <= image_start <= image_start + image_length <= length:
        raise ValueError(f"image block [{image_start}, {image_start + image_length}) does not fit a sequence of "
                         f"length {length}")
    index = torch.arange(length)
    causal = index[None, :] <= index[:, None]
    in_image = (index >= image_start) & (index < image_start + image_length)
    return causal | (in_image[:, None] & in_image[None, :])


@dataclass
class TransfusionConfig:
    patch: int = 2  # patch side: an 8x8 image is 16 tokens of 4 values
    width: int = 64
    depth: int = 3
    heads: int = 4
    diffusion_weight: float = 5.0  # lambda of L_LM + lambda L_DDPM (the paper's value)
    text_to_image_fraction: float = 0.8  # of each batch (the paper's 80%); the rest is image then caption
    caption_dropout: float = 0.1  # text-to-image captions replaced by NULL (for classifier-free guidance)
    guidance: float = 3.0  # classifier-free guidance weight when sampling (1: the conditional model alone)
    num_steps: int = 1000  # T of the training grid t = i / T
    beta_min: float = 0.1
    beta_max: float = 20.0
    sample_steps: int = 100  # default reverse steps (respaced on the training grid)


@register("transfusion")
class Transfusion(Conditional, ScoreBased):
    """p(image | caption) by diffusion and p(caption | image) by next-token prediction, one transformer.

    Images are (B, C, H, W) in [0, 1] (H, W multiples of config.patch); the condition is the digit label
    (B,) long, which is also the caption's word token (tokenize("seven") == 7)."""

    Config = TransfusionConfig

    def __init__(self, event_shape, config: TransfusionConfig | None = None):
        config = config or self.Config()
        super().__init__(event_shape, config)
        if len(self.event_shape) != 3 or self.event_shape[1] % config.patch or self.event_shape[2] % config.patch:
            raise ShapeError(f"Transfusion models images (C, H, W) with H and W multiples of patch = {config.patch}, "
                             f"got event_shape {self.event_shape}")
        if not 0.0 < config.text_to_image_fraction < 1.0 or not 0.0 <= config.caption_dropout < 1.0:
            raise ValueError("text_to_image_fraction must be in (0, 1) and caption_dropout in [0, 1)")
        channels, height, width = self.event_shape
        self.patch_dim = channels * config.patch**2
        self.image_tokens = (height // config.patch) * (width // config.patch)
        self.max_length = 5 + self.image_tokens  # BOS word EOS BOI [image] EOI, or BOS BOI [image] EOI word EOS
        self.token_embedding = nn.Embedding(VOCAB, config.width)
        self.patch_in = nn.Linear(self.patch_dim, config.width)
        self.time_embedding = nn.Sequential(SinusoidalTimeEmbedding(config.width),
                                            nn.Linear(config.width, config.width), nn.SiLU(),
                                            nn.Linear(config.width, config.width))
        self.position = nn.Parameter(0.02 * torch.randn(self.max_length, config.width))
        self.blocks = transformer_stack(config.width, config.depth, config.heads)
        self.norm = nn.LayerNorm(config.width)
        self.text_head = nn.Linear(config.width, VOCAB)
        self.eps_head = nn.Linear(config.width, self.patch_dim)

    # -- images <-> patch tokens, schedule ------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, N, C p p)
        p, (c, h, w) = self.config.patch, self.event_shape
        x = x.reshape(x.shape[0], c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(x.shape[0], self.image_tokens, self.patch_dim)

    def unpatchify(self, z: torch.Tensor) -> torch.Tensor:  # (B, N, C p p) -> (B, C, H, W)
        p, (c, h, w) = self.config.patch, self.event_shape
        z = z.reshape(z.shape[0], h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return z.reshape(z.shape[0], c, h, w)

    def alpha_bar(self, t):
        return alpha_bar_vp_linear(t, self.config.beta_min, self.config.beta_max)

    # -- the network -------------------------------------------------------------------------------
    def forward(self, before: torch.Tensor, patches: torch.Tensor, t: torch.Tensor, after: torch.Tensor):
        """One pass over [before tokens, image tokens, after tokens]: before (B, S) and after (B, A) long,
        patches (B, N, patch_dim), t (B,) the image's diffusion time. -> (logits (B, L, VOCAB) at every
        position, predicting the next token; eps_hat (B, N, patch_dim) at the image positions)."""
        start, n = before.shape[1], patches.shape[1]
        image = self.patch_in(patches) + self.time_embedding(t)[:, None]  # (B, N, W)
        h = torch.cat([self.token_embedding(before), image, self.token_embedding(after)], dim=1)
        length = h.shape[1]
        if length > self.max_length:
            raise ShapeError(f"sequence of length {length} is longer than the {self.max_length} positions learned")
        allowed = transfusion_mask(length, start, n).to(h.device)
        h = self.norm(self.blocks(h + self.position[:length], mask=~allowed))  # PyTorch: True = may NOT attend
        return self.text_head(h), self.eps_head(h[:, start:start + n])

    # -- training ------------------------------------------------------------------------------------
    def check_labels(self, c, n: int) -> torch.Tensor:
        if isinstance(c, (str, list, tuple)):
            c = tokenize(c)
        c = self.check_condition(c, n)
        if len(c) and (int(c.min()) < 0 or int(c.max()) >= len(WORDS)):
            raise ValueError(f"captions are digit labels 0..{len(WORDS) - 1} (the words {WORDS[0]} .. {WORDS[-1]}), "
                             f"got values in [{int(c.min())}, {int(c.max())}]")
        return c

    def _column(self, value: int, b: int) -> torch.Tensor:
        return torch.full((b, 1), value, dtype=torch.long, device=self.device)

    def text_to_image_sequences(self, words: torch.Tensor):
        """(before, after) tokens of 'BOS word EOS BOI [image] EOI' for words (B,)."""
        b = len(words)
        before = torch.cat([self._column(BOS, b), words[:, None], self._column(EOS, b), self._column(BOI, b)], 1)
        return before, self._column(EOI, b)

    def image_to_text_sequences(self, words: torch.Tensor):
        """(before, after) tokens of 'BOS BOI [image] EOI word EOS' for words (B,)."""
        b = len(words)
        after = torch.cat([self._column(EOI, b), words[:, None], self._column(EOS, b)], 1)
        return torch.cat([self._column(BOS, b), self._column(BOI, b)], 1), after

    def next_token_loss(self, logits, before, after) -> torch.Tensor:
        """Mean cross-entropy of every text token (after the first) given its prefix; image positions are
        no targets. logits (B, L, V) from forward on (before, image, after)."""
        image = torch.full((len(before), self.image_tokens), IGNORE, dtype=torch.long, device=before.device)
        targets = torch.cat([before, image, after], 1)[:, 1:]  # position i predicts token i + 1
        return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), targets.reshape(-1), ignore_index=IGNORE)

    def diffusion_loss(self, x0: torch.Tensor, words: torch.Tensor, t: torch.Tensor, eps: torch.Tensor):
        """(L_DDPM, L_LM) of text-to-image sequences for clean images x0 (B, C, H, W) in [0, 1], captions
        words (B,), times t (B,) and noise eps (B, C, H, W): |eps - eps_theta(x_t)|^2 averaged, x_t noised
        from 2 x0 - 1, and the next-token loss of the same sequences."""
        data = 2 * x0 - 1
        a = per_example(self.alpha_bar(t), data)
        x_t = a.sqrt() * data + (1 - a).sqrt() * eps
        before, after = self.text_to_image_sequences(words)
        logits, eps_hat = self(before, self.patchify(x_t), t, after)
        return (eps_hat - self.patchify(eps)).pow(2).mean(), self.next_token_loss(logits, before, after)

    def captioning_loss(self, x0: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """L_LM of image-to-text sequences: the caption given the clean image (t = 0)."""
        before, after = self.image_to_text_sequences(words)
        t = torch.zeros(len(x0), device=x0.device, dtype=x0.dtype)
        logits, _ = self(before, self.patchify(2 * x0 - 1), t, after)
        return self.next_token_loss(logits, before, after)

    def losses(self, x, c, *, generator=None) -> dict[str, torch.Tensor]:
        """{'text', 'diffusion'}: the batch's first text_to_image_fraction examples as caption -> image (their
        captions dropped to NULL with probability caption_dropout), the rest as image -> caption."""
        x0 = self.check_input(x)
        words = self.check_labels(c, len(x0))
        split = max(1, min(len(x0) - 1, round(self.config.text_to_image_fraction * len(x0)))) if len(x0) > 1 else 1
        first, second = x0[:split], x0[split:]
        t = randint(1, self.config.num_steps + 1, (split,), first, generator).to(first.dtype) / self.config.num_steps
        eps = randn_like(first, generator)
        dropped = rand((split,), first, generator) < self.config.caption_dropout
        words_t2i = torch.where(dropped, torch.full_like(words[:split], NULL), words[:split])
        diffusion, text_t2i = self.diffusion_loss(first, words_t2i, t, eps)
        if len(second) == 0:
            return {"text": text_t2i, "diffusion": diffusion}
        text_i2t = self.captioning_loss(second, words[split:])
        text = (split * text_t2i + len(second) * text_i2t) / len(x0)  # every sequence has the same 4 text targets
        return {"text": text, "diffusion": diffusion}

    def loss(self, x, c, *, generator=None) -> torch.Tensor:
        """L_LM + lambda L_DDPM (Zhou et al. 2024, eq. 4), lambda = config.diffusion_weight."""
        parts = self.losses(x, c, generator=generator)
        return parts["text"] + self.config.diffusion_weight * parts["diffusion"]

    # -- caption -> image ------------------------------------------------------------------------------
    def predict_eps(self, patches, t, words, guidance: float = 1.0):
        """eps_theta of noisy patch tokens (B, N, D) at time t given caption words (B,); with guidance w != 1,
        eps_null + w (eps_caption - eps_null) (Ho & Salimans 2022), both in ONE pass over a doubled batch."""
        t = as_time(t, patches)
        if guidance == 1.0:
            return self._eps_given_caption(patches, t, words)
        both = torch.cat([words, torch.full_like(words, NULL)])
        conditional, unconditional = self._eps_given_caption(patches.repeat(2, 1, 1), t.repeat(2), both).chunk(2)
        return unconditional + guidance * (conditional - unconditional)

    def _eps_given_caption(self, patches, t, words):
        before, _ = self.text_to_image_sequences(words)
        empty = before[:, :0]  # nothing after the image yet: the causal mask hides EOI from it anyway
        return self(before, patches, t, empty)[1]

    @torch.no_grad()
    def sample(self, n, condition=None, steps=None, *, eta: float = 1.0, guidance: float | None = None,
               generator=None) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] for the captions `condition` (labels (n,) long, or n caption strings):
        `steps` reverse steps (default config.sample_steps) of DDIM on the respaced training grid, eta = 1 being
        DDPM's ancestral sampler; one transformer pass per step (so NFE = steps, with or without guidance)."""
        n = self.check_n(n)
        if condition is None:
            raise ValueError("Transfusion.sample needs captions: condition = digit labels (n,) or n strings such "
                             f"as {WORDS[7]!r}")
        words = self.check_labels(condition, n)
        w = self.config.guidance if guidance is None else float(guidance)
        times = samplers.respaced_times(self.config.num_steps, steps or self.config.sample_steps)
        z = self.randn(n, self.image_tokens, self.patch_dim, generator=generator)
        z = samplers.ddim(lambda p, t: self.predict_eps(p, t, words, w), z, None, self.alpha_bar, eta=eta,
                          generator=generator, times=times)
        return ((self.unpatchify(z) + 1) / 2).clamp(0, 1)

    def score(self, x, t, condition=None):
        """grad_x log p_t(x | caption) = -eps_theta / sqrt(1 - alpha_bar(t)), x the image scaled to [-1, 1]."""
        t = as_time(t, x)
        eps = self.unpatchify(self.predict_eps(self.patchify(x), t, self.check_labels(condition, len(x))))
        return -eps / per_example(1 - self.alpha_bar(t), x).sqrt()

    # -- image -> caption --------------------------------------------------------------------------------
    @torch.no_grad()
    def caption_tokens(self, images, max_tokens: int = 2) -> torch.Tensor:
        """Greedy decoding after 'BOS BOI [clean image] EOI': (B, max_tokens) tokens (a word, then EOS)."""
        x0 = self.check_input(images)
        before, _ = self.image_to_text_sequences(torch.zeros(len(x0), dtype=torch.long, device=self.device))
        patches, t = self.patchify(2 * x0 - 1), torch.zeros(len(x0), device=x0.device, dtype=x0.dtype)
        after = self._column(EOI, len(x0))
        for _ in range(max_tokens):
            logits, _ = self(before, patches, t, after)
            after = torch.cat([after, logits[:, -1].argmax(-1, keepdim=True)], 1)
        return after[:, 1:]

    def caption(self, images) -> list[str]:
        """Captions of images (B, C, H, W) in [0, 1]: the greedily decoded words up to EOS."""
        out = []
        for row in self.caption_tokens(images).tolist():
            words = row[:row.index(EOS)] if EOS in row else row
            out.append(" ".join(detokenize(words)))
        return out

    def caption_labels(self, images) -> torch.Tensor:
        """The digit each image is captioned as, (B,) long; -1 where the first decoded token is not a digit."""
        first = self.caption_tokens(images, max_tokens=1)[:, 0]
        return torch.where(first < len(WORDS), first, torch.full_like(first, -1))

    def log_prob(self, x):
        raise NotImplementedError("Transfusion's image likelihood would need the probability-flow ODE of the "
                                  "caption-conditioned diffusion; it trains on the DDPM loss only and defines none")

