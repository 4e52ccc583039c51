"""gfp_core: GFPGAN face restoration — architectures, weights, face pipeline and CLI."""
__version__ = "0.1.0"
