"""unigm: the shared library of the Unified Generative Models course.

Import what you use explicitly, e.g. `from unigm.diffusion import DDPM` or
`from unigm import zoo; model = zoo.make("ddpm", (2,))`.
"""
__version__ = "0.1.0"
