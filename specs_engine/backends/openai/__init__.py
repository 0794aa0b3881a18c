"""The OpenAI-compatible HTTP runtime (a vLLM server): the language model and the reward
adapters on the server's pooling API. httpx is imported only when a server is used."""
