"""The VAE family: autoencoders with a latent code, continuous or quantized.

    gaussian.py    VAE, BetaVAE, BernoulliVAE: the ELBO and the importance-weighted bound
    fsq.py         FSQ, finite scalar quantization (an implicit, fixed codebook)
    quantized.py   VQVAE and FSQVAE on one quantized-autoencoder base; code_perplexity

The Gaussian log-density and KL live in unigm.densities and are re-exported here.
"""
from ..densities import LOG_2PI, gaussian_log_prob, kl_to_standard_normal
from .fsq import FSQ
from .gaussian import VAE, BernoulliVAE, BernoulliVAEConfig, BetaVAE, BetaVAEConfig, VAEConfig
from .quantized import FSQVAE, VQVAE, FSQVAEConfig, QuantizedAutoencoder, VQVAEConfig, code_perplexity

__all__ = ["BernoulliVAE", "BernoulliVAEConfig", "BetaVAE", "BetaVAEConfig", "FSQ", "FSQVAE", "FSQVAEConfig",
           "LOG_2PI", "QuantizedAutoencoder", "VAE", "VAEConfig", "VQVAE", "VQVAEConfig", "code_perplexity",
           "gaussian_log_prob", "kl_to_standard_normal"]
