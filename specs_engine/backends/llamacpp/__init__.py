"""The llama.cpp runtime (backend="llama.cpp"): GGUF files on llama.cpp's CPU kernels,
through llama-cpp-python's low-level bindings. lm.py holds LlamaCppLM and load(); the
reward stays on transformers (backends.REWARD_RUNTIME)."""
