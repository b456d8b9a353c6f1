"""Memory context: vectors, embeddings, hierarchical memory, topics."""
