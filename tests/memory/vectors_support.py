"""Helpers for the vector tests: seeded vectors, collections, exact answers to compare with."""

from __future__ import annotations

import numpy as np

from lumina.memory import api as memory

DIM = 8


def unit(rng: np.random.Generator, dim: int = DIM) -> list[float]:
    vector = rng.normal(size=dim)
    return (vector / np.linalg.norm(vector)).tolist()


def make_collection(actor, name: str = "notes", **options):
    options.setdefault("embedding_model", "")
    options.setdefault("dimension", DIM)
    return memory.collection_create(actor=actor, name=name, **options)


def fill(actor, name: str, count: int, *, seed: int = 7, metadata=None, texts=None):
    """``count`` records ``r0``… with seeded unit vectors; returns {id: vector}."""
    rng = np.random.default_rng(seed)
    vectors = {}
    records = []
    for index in range(count):
        vector = unit(rng)
        vectors[f"r{index}"] = vector
        record = {"id": f"r{index}", "vector": vector}
        if metadata is not None:
            record["metadata"] = metadata(index)
        if texts is not None:
            record["text"] = texts(index)
        records.append(record)
    for start in range(0, count, 500):
        memory.vectors_upsert(actor=actor, collection=name, records=records[start : start + 500])
    return vectors


def exact_cosine(vectors: dict[str, list[float]], query: list[float], k: int, keep=None):
    keys = [key for key in vectors if keep is None or keep(key)]
    if not keys:
        return []
    matrix = np.asarray([vectors[key] for key in keys])
    similarity = matrix @ np.asarray(query) / np.linalg.norm(matrix, axis=1) / np.linalg.norm(query)
    order = np.argsort(-similarity, kind="stable")[:k]
    return [keys[i] for i in order]
