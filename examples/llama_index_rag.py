"""A LlamaIndex RAG query engine over a few local documents, answered by SPECS.

Query engines pass no per-call settings, so the budget lives on the LLM; `with_budget`
makes a cheap copy (same loaded models) for a second engine with a tighter budget. The
embedding is a small hashed bag of words, so everything runs offline.

    python examples/llama_index_rag.py
    python examples/llama_index_rag.py --models DRAFT TARGET REWARD --scale 0.1
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _models import model_locations, parse  # noqa: E402

from specs_integrations.llama_index import SpecsLLM  # noqa: E402

DOCUMENTS = {
    "cafe.txt": "The Blue Cafe opens at 7 am and closes at 3 pm. A cup of tea costs 2 dollars.",
    "library.txt": "The town library opens at 9 am. It lends at most 5 books per visit.",
    "bus.txt": "Bus 12 leaves the station every 20 minutes, from 6 am to 11 pm.",
    "market.txt": "The farmers market runs on Saturdays. Apples cost 1 dollar per pound.",
}
QUESTION = "Ann buys 3 cups of tea at the Blue Cafe. How much does she pay?"


class HashedWordsEmbedding(BaseEmbedding):
    """Bag of words hashed into a fixed-size unit vector: crude, offline, deterministic."""

    dim: int = 256

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse(__doc__.splitlines()[0], argv)
    documents = [Document(text=text, metadata={"file": name}) for name, text in DOCUMENTS.items()]
    index = VectorStoreIndex.from_documents(documents, embed_model=HashedWordsEmbedding())
    llm = SpecsLLM(**model_locations(args), latency_budget_s=30.0 * args.scale,
                   max_steps=6, max_new_tokens=192, n=2, beam_width=2)

    engine = index.as_query_engine(llm=llm, streaming=True, similarity_top_k=2)
    streaming = engine.query(QUESTION)
    print("--- streamed answer, one delta per accepted step:")
    deltas = [delta for delta in streaming.response_gen]
    print("".join(deltas))
    sources = [node.metadata["file"] for node in streaming.source_nodes]
    print("sources:", sources)

    quick = index.as_query_engine(llm=llm.with_budget(latency_budget_s=3.0 * args.scale),
                                  similarity_top_k=2)
    answer = quick.query(QUESTION)
    print(f"--- on a tight budget:\n{answer.response}")
    return {"deltas": deltas, "sources": sources, "quick": answer.response}


if __name__ == "__main__":
    main()
