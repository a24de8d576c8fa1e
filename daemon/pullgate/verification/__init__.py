"""Notary Project signature verification: pure, synchronous, notation-conformant."""
