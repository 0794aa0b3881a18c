"""The in-process Hugging Face runtime (torch + transformers): the language model and
the reward adapters (step-token PRM, sequence classifier, value head) with their shared
loading rules, KV cache and prefix reuse. Imported only when asked for."""
