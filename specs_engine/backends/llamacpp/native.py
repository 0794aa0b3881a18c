"""The slice of llama.cpp's C API this runtime uses, through llama-cpp-python's ctypes
bindings (`llama_cpp.llama_*`), not its high-level `Llama` class.

Why the low-level API: `Llama` runs one sequence at a time. SPECS needs n candidates per
beam decoded in ONE batch, each a llama.cpp sequence whose KV cells are shared with the
prefix (llama_memory_seq_cp adds a sequence id to cells, it copies nothing), and needs
all candidates of a beam scored in one batch over that prefix's cells.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from specs_engine.errors import SpecsError

INSTALL_HINT = (
    "pip install 'specs-tts[llama-cpp]' (builds llama-cpp-python==0.3.36 from source: it needs "
    "a C/C++ compiler and cmake, and takes about 6 minutes on 2 cores; pip caches the wheel)"
)


class LlamaCppMissingError(SpecsError, ImportError):
    """llama-cpp-python is absent or its native library does not load."""

    def __init__(self, cause: BaseException):
        super().__init__(
            f"backend='llama.cpp' needs llama-cpp-python, which failed to import "
            f"({type(cause).__name__}: {cause}). Install it with: {INSTALL_HINT}"
        )


class KVFullError(SpecsError, RuntimeError):
    """llama_decode found no free KV cells for a batch (the caller frees cells and retries)."""


def import_llama_cpp() -> Any:
    """The ctypes bindings, or an error naming the install command and what it needs."""
    try:
        import llama_cpp
    except Exception as exc:  # ImportError, or OSError when the shared library fails to load
        raise LlamaCppMissingError(exc) from exc
    quiet = logging.getLogger("llama-cpp-python")
    if quiet.level == logging.NOTSET:
        # llama.cpp logs every load to stderr otherwise. 0.3.36 maps ggml's levels with an
        # older enum (warnings arrive as ERROR), so only CRITICAL silences them; failures
        # still surface as our errors. setLevel(logging.DEBUG) on this logger shows all.
        quiet.setLevel(logging.CRITICAL)
    return llama_cpp


@dataclass(frozen=True)
class Token:
    """One token of a batch: where it goes and whether its logits are wanted."""

    id: int
    pos: int
    seq: int
    logits: bool


class Native:
    """One GGUF model with one context: a unified KV pool of n_ctx cells that up to
    n_seq_max sequences share, and one reusable batch of n_batch tokens."""

    def __init__(self, path: str, *, n_ctx: int, n_batch: int, n_seq_max: int, n_threads: int,
                 kv_type: str = "f16"):
        self.lib = lib = import_llama_cpp()
        lib.llama_backend_init()
        model_params = lib.llama_model_default_params()
        model_params.n_gpu_layers = 0
        self.model = lib.llama_model_load_from_file(path.encode(), model_params)
        if not self.model:
            raise SpecsError(f"llama.cpp could not load {path!r} as a GGUF model")
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.vocab_size = int(lib.llama_vocab_n_tokens(self.vocab))
        self.n_embd = int(lib.llama_model_n_embd(self.model))
        self.n_ctx_train = int(lib.llama_model_n_ctx_train(self.model))
        params = lib.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_batch
        params.n_seq_max, params.kv_unified = n_seq_max, True  # unified: seq_cp shares cells
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        params.pooling_type = lib.LLAMA_POOLING_TYPE_NONE  # states are per token (decode(states=True))
        if kv_type == "f32":  # f32 cells and plain attention: logits as exact as the weights
            params.type_k = params.type_v = lib.GGML_TYPE_F32
            params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            lib.llama_model_free(self.model)
            raise SpecsError(f"llama.cpp could not create a context for {path!r} (n_ctx={n_ctx})")
        self.memory = lib.llama_get_memory(self.ctx)
        # llama.cpp may lower n_batch (to n_ctx): the context's own values are the limits
        self.n_ctx, self.n_batch = int(lib.llama_n_ctx(self.ctx)), int(lib.llama_n_batch(self.ctx))
        self.n_seq_max = n_seq_max
        self._batch = lib.llama_batch_init(self.n_batch, 0, 1)
        self._pieces: dict[int, bytes] = {}
        self._embeddings = False  # whether llama_decode also returns states (see _decode_chunk)

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.lib.llama_batch_free(self._batch)
            self.lib.llama_free(self.ctx)
            self.lib.llama_model_free(self.model)
            self.ctx = self.model = None

    def __del__(self) -> None:
        self.close()

    # ---- vocabulary ------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        raw = text.encode("utf-8")
        room = len(raw) + 8
        out = (self.lib.llama_token * room)()
        n = self.lib.llama_tokenize(self.vocab, raw, len(raw), out, room, add_special, parse_special)
        if n < 0:
            room = -n
            out = (self.lib.llama_token * room)()
            n = self.lib.llama_tokenize(self.vocab, raw, len(raw), out, room, add_special, parse_special)
        return list(out[:n])

    def piece(self, token: int) -> bytes:
        """The bytes token stands for; control tokens (EOS, chat markers) give b"". A piece
        longer than the buffer comes back as minus its size: asked again with that size."""
        cached = self._pieces.get(token)
        if cached is None:
            size = 256
            buffer = ctypes.create_string_buffer(size)
            n = self.lib.llama_token_to_piece(self.vocab, token, buffer, size, 0, False)
            if n < 0:
                size = -n
                buffer = ctypes.create_string_buffer(size)
                n = self.lib.llama_token_to_piece(self.vocab, token, buffer, size, 0, False)
            cached = self._pieces[token] = buffer.raw[: max(n, 0)]
        return cached

    def detokenize(self, ids: Sequence[int]) -> str:
        return b"".join(self.piece(int(t)) for t in ids).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return (self.lib.llama_vocab_get_text(self.vocab, token) or b"").decode("utf-8", errors="replace")

    def is_control(self, token: int) -> bool:
        return bool(self.lib.llama_vocab_get_attr(self.vocab, token) & self.lib.LLAMA_TOKEN_ATTR_CONTROL)

    def end_of_generation_ids(self) -> frozenset[int]:
        """Every id llama.cpp treats as ending generation (EOS, EOT, <|im_end|> ...)."""
        return frozenset(t for t in range(self.vocab_size) if self.lib.llama_vocab_is_eog(self.vocab, t))

    def adds_bos(self) -> bool:
        return bool(self.lib.llama_vocab_get_add_bos(self.vocab))

    def metadata(self, key: str) -> Optional[str]:
        size = 1 << 16
        buffer = ctypes.create_string_buffer(size)
        n = self.lib.llama_model_meta_val_str(self.model, key.encode(), buffer, size)
        if n < 0:
            return None
        if n >= size:
            buffer = ctypes.create_string_buffer(n + 1)
            self.lib.llama_model_meta_val_str(self.model, key.encode(), buffer, n + 1)
        return buffer.value.decode("utf-8", errors="replace")

    # ---- the KV pool -----------------------------------------------------------------

    def copy_sequence(self, source: int, destination: int, length: int) -> None:
        """Give destination the first `length` positions of source: the cells are shared."""
        self.lib.llama_memory_seq_rm(self.memory, destination, -1, -1)
        if length > 0:
            self.lib.llama_memory_seq_cp(self.memory, source, destination, 0, length)

    def drop_sequence(self, seq: int, start: int = 0) -> None:
        """Forget seq's positions from start on (cells no other sequence holds are freed)."""
        self.lib.llama_memory_seq_rm(self.memory, seq, start, -1)

    def clear_memory(self) -> None:
        self.lib.llama_memory_clear(self.memory, True)

    def decode(self, tokens: Sequence[Token], *, states: bool = False) -> Output:
        """Run tokens through the model (chunks of n_batch): the logits of the tokens with
        logits=True, in order, and with states=True their final (post-norm) hidden states
        from the same llama_decode. Raises KVFullError when the pool has no room (the cells
        of the chunks already run stay)."""
        outputs = [self._decode_chunk(tokens[at : at + self.n_batch], states)
                   for at in range(0, len(tokens), self.n_batch)]
        if not outputs:
            outputs = [Output(np.zeros((0, self.vocab_size), np.float32),
                              np.zeros((0, self.n_embd), np.float32) if states else None)]
        return Output(np.concatenate([o.logits for o in outputs]),
                      np.concatenate([o.states for o in outputs]) if states else None)

    def _decode_chunk(self, chunk: Sequence[Token], states: bool) -> Output:
        batch = self._batch
        batch.n_tokens = len(chunk)
        for i, token in enumerate(chunk):
            batch.token[i], batch.pos[i] = token.id, token.pos
            batch.n_seq_id[i], batch.seq_id[i][0] = 1, token.seq
            batch.logits[i] = token.logits
        # Embeddings on makes llama.cpp also copy out the final norm's output (pooling NONE:
        # one row per output). It also makes every token an output: asked per decode only.
        if states != self._embeddings:
            self.lib.llama_set_embeddings(self.ctx, states)
            self._embeddings = states
        status = self.lib.llama_decode(self.ctx, batch)
        if status == 1:
            raise KVFullError(f"no free KV cells for {len(chunk)} tokens (n_ctx={self.n_ctx})")
        if status != 0:
            raise SpecsError(f"llama_decode failed with status {status} on {len(chunk)} tokens")
        wanted = np.flatnonzero([t.logits for t in chunk])
        if not states:
            return Output(self._rows(self.lib.llama_get_logits(self.ctx), len(wanted), self.vocab_size))
        # with embeddings on, llama.cpp made every token an output: keep the wanted ones
        logits = self._rows(self.lib.llama_get_logits(self.ctx), len(chunk), self.vocab_size)
        hidden = self._rows(self.lib.llama_get_embeddings(self.ctx), len(chunk), self.n_embd)
        if len(wanted) < len(chunk):
            logits, hidden = logits[wanted], hidden[wanted]
        return Output(logits, hidden)

    @staticmethod
    def _rows(pointer: Any, rows: int, width: int) -> np.ndarray:
        """A copy of llama.cpp's float buffer of `rows` outputs of `width` floats."""
        if not rows:
            return np.zeros((0, width), np.float32)
        return np.ctypeslib.as_array(pointer, shape=(rows * width,)).reshape(rows, width).copy()


@dataclass(frozen=True)
class Output:
    """What one decode gives: logits [outputs, vocab] and, when asked, states [outputs, n_embd]."""

    logits: np.ndarray
    states: Optional[np.ndarray] = None


def default_threads() -> int:
    """Every core this process may use (llama.cpp's own default is a fixed 4)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
