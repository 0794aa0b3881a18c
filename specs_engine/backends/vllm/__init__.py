"""The in-process vLLM runtime: VllmLM (generate runner) and the pooling reward adapters.
vLLM itself is imported only when one of them is built."""
