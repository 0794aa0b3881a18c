"""Shared test helpers, imported as tests.helpers.<module>: scripted models (scripted),
a scripted engine for the integrations (fakes), a fake HTTP server (fake_http) and tiny
real model builders (tiny_models)."""
