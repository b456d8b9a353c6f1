"""Topics of a set of texts from their embeddings (pure functions, scikit-learn).

Leaf topics are k-means clusters of the L2-normalised embeddings (so Euclidean distance
ranks like cosine); k is the silhouette-best of a few candidates around sqrt(n/2), so a
scope of 30 turns and one of 30,000 both get a sensible number without a parameter.
Parents are an agglomerative (average-linkage, cosine) clustering of the leaves'
centroids. Keywords per topic are class-based TF-IDF (BERTopic's c-TF-IDF): all texts of
a topic are one document, a term's weight is its frequency there times
log(1 + average words per topic / the term's frequency over all topics). Seeded, so the
same input gives the same topics.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from lumina.kernel.lazy import LazyImport

np = LazyImport("numpy")  # loaded with the first computation, not with the server

__all__ = ["ClusteredTopic", "Clustering", "c_tf_idf", "cluster"]


def _sklearn():
    """scikit-learn, imported on first clustering: importing it (with scipy) takes about a
    second and tens of MiB, and only topic extraction needs it."""
    from sklearn import cluster, metrics
    from sklearn.feature_extraction import text

    return cluster, metrics, text


_WORDS = r"(?u)\b[a-zA-Z][a-zA-Z\-]+\b"  # words of letters, no numbers

SEED = 0
MIN_TOPIC_SIZE = 2
KEYWORDS = 8
SILHOUETTE_SAMPLE = 2000


@dataclasses.dataclass(frozen=True)
class ClusteredTopic:
    index: int
    members: tuple[int, ...]  # positions in the input
    keywords: tuple[str, ...]
    weights: tuple[float, ...]
    parent: int | None = None  # index of the parent topic
    level: int = 0  # 0 = leaf, 1 = parent


@dataclasses.dataclass(frozen=True)
class Clustering:
    topics: tuple[ClusteredTopic, ...]
    silhouette: float | None


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _candidates(n: int) -> list[int]:
    centre = max(2, round(math.sqrt(n / 2)))
    ks = {max(2, round(centre * f)) for f in (0.5, 0.75, 1.0, 1.5, 2.0)}
    return sorted(k for k in ks if k < n)


def _best_kmeans(vectors: np.ndarray) -> tuple[np.ndarray, float | None]:
    n = len(vectors)
    if n < 2 * MIN_TOPIC_SIZE:
        return np.zeros(n, dtype=int), None
    best: tuple[float, np.ndarray] | None = None
    sample = min(n, SILHOUETTE_SAMPLE)
    for k in _candidates(n):
        model = _sklearn()[0].KMeans(n_clusters=k, n_init=4, random_state=SEED)
        labels = model.fit_predict(vectors)
        if len(set(labels)) < 2:
            continue
        score = float(
            _sklearn()[1].silhouette_score(vectors, labels, sample_size=sample, random_state=SEED)
        )
        if best is None or score > best[0]:
            best = (score, labels)
    if best is None:
        return np.zeros(n, dtype=int), None
    return best[1], best[0]


def c_tf_idf(
    documents: Sequence[str], *, top: int = KEYWORDS
) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
    """Keywords (and weights) of each class, where ``documents[i]`` is all text of class i."""
    if not documents:
        return []
    vectorizer = _sklearn()[2].CountVectorizer(
        stop_words="english",
        ngram_range=(1, 2),
        token_pattern=_WORDS,
        lowercase=True,
    )
    try:
        counts = vectorizer.fit_transform(documents)
    except ValueError:  # nothing but stop words
        return [((), ()) for _ in documents]
    terms = vectorizer.get_feature_names_out()
    tf = counts.toarray().astype(float)
    words_per_class = tf.sum(axis=1)
    average = max(float(words_per_class.mean()), 1.0)
    frequency = tf.sum(axis=0)
    idf = np.log(1.0 + average / np.maximum(frequency, 1.0))
    row_totals = np.maximum(words_per_class, 1.0)[:, None]
    scores = (tf / row_totals) * idf
    result = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        picked: list[str] = []
        weights: list[float] = []
        for index in order:
            if row[index] <= 0 or len(picked) >= top:
                break
            term = str(terms[index])
            # A unigram already inside a picked bigram (or vice versa) says nothing new.
            if any(term in p.split() or p in term.split() for p in picked):
                continue
            picked.append(term)
            weights.append(round(float(row[index]), 6))
        result.append((tuple(picked), tuple(weights)))
    return result


def cluster(texts: Sequence[str], embeddings: Sequence[Sequence[float]] | np.ndarray) -> Clustering:
    """Leaf topics and their parents for ``texts`` (one embedding each)."""
    if len(texts) != len(embeddings):
        raise ValueError("texts and embeddings differ in length")
    if not texts:
        return Clustering(topics=(), silhouette=None)
    vectors = _normalise(np.asarray(embeddings, dtype=np.float32))
    if not np.isfinite(vectors).all():
        raise ValueError("embeddings contain NaN or infinity")
    labels, silhouette = _best_kmeans(vectors)
    groups: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(int(label), []).append(position)
    # Largest first, then by first member, so indexes are stable for the same input.
    leaves = sorted(groups.values(), key=lambda members: (-len(members), members[0]))
    centroids = np.stack([vectors[members].mean(axis=0) for members in leaves])

    parents_of: list[int | None] = [None] * len(leaves)
    parent_groups: list[list[int]] = []
    if len(leaves) >= 4:
        n_parents = max(2, round(math.sqrt(len(leaves))))
        model = _sklearn()[0].AgglomerativeClustering(
            n_clusters=n_parents, metric="cosine", linkage="average"
        )
        parent_labels = model.fit_predict(_normalise(centroids))
        by_label: dict[int, list[int]] = {}
        for leaf, label in enumerate(parent_labels):
            by_label.setdefault(int(label), []).append(leaf)
        # A parent over a single leaf adds nothing: that leaf stays a root.
        parent_groups = sorted(
            (group for group in by_label.values() if len(group) > 1), key=lambda g: g[0]
        )

    leaf_keywords = c_tf_idf([" ".join(texts[i] for i in members) for members in leaves])
    topics: list[ClusteredTopic] = []
    parent_index_base = len(leaves)
    for p, group in enumerate(parent_groups):
        for leaf in group:
            parents_of[leaf] = parent_index_base + p
    for index, members in enumerate(leaves):
        keywords, weights = leaf_keywords[index]
        topics.append(
            ClusteredTopic(
                index=index,
                members=tuple(members),
                keywords=keywords,
                weights=weights,
                parent=parents_of[index],
            )
        )
    if parent_groups:
        parent_docs = [
            " ".join(texts[i] for leaf in group for i in leaves[leaf]) for group in parent_groups
        ]
        for p, (group, (keywords, weights)) in enumerate(
            zip(parent_groups, c_tf_idf(parent_docs), strict=True)
        ):
            members = tuple(sorted(i for leaf in group for i in leaves[leaf]))
            topics.append(
                ClusteredTopic(
                    index=parent_index_base + p,
                    members=members,
                    keywords=keywords,
                    weights=weights,
                    level=1,
                )
            )
    return Clustering(topics=tuple(topics), silhouette=silhouette)
