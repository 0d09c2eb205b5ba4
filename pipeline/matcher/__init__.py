"""Linking tracks into global identities: faiss gallery, union-find merges, the matcher and its stage."""
