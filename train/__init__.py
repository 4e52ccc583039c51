"""GFPGAN trainer built on gfp_core architectures."""
