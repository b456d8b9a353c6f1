"""Models Lumina runs itself, offline: the ``local`` provider's embeddings."""
