"""The autoregressive family: p(x) = prod_i p(x_i | x_<i). Causal convolutions, WaveNet on mu-law codes
of 1D signals, PixelCNN, the gated PixelCNN and a pixel transformer on binary or grey-level images (`levels`), and a transformer
prior over discrete codes (the second stage of a VQ-VAE)."""
from .causal import CausalConv1d, DilatedCausalStack
from .mar import MAR, DiffusionHead, MARConfig, MaskedTransformer, patchify, reveal_counts, unpatchify
from .pixelcnn import (BinaryImageAR, GatedLayer, GatedPixelCNN, MaskedConv2d, PixelCNN, raster_before,
                       receptive_field)
from .transformer import CausalTransformer, CodePrior, PixelTransformer, transformer_stack
from .var import VAR, MultiScaleTokenizer, VARConfig
from .wavenet import GatedResidualBlock, WaveNet, mu_law_compress, mu_law_decode, mu_law_encode

__all__ = ["BinaryImageAR", "CausalConv1d", "DilatedCausalStack", "GatedLayer", "GatedPixelCNN", "MaskedConv2d",
           "PixelCNN", "raster_before", "receptive_field"]
__all__ += ["CausalTransformer", "CodePrior", "PixelTransformer", "transformer_stack"]
__all__ += ["GatedResidualBlock", "WaveNet", "mu_law_compress", "mu_law_decode", "mu_law_encode"]
__all__ += ["MultiScaleTokenizer", "VAR", "VARConfig"]
__all__ += ["DiffusionHead", "MAR", "MARConfig", "MaskedTransformer", "patchify", "reveal_counts", "unpatchify"]
