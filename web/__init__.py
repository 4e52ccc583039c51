"""Gradio demo and Hugging Face Space built on gfp_core."""
