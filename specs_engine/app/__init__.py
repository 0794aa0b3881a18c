"""What runs on top of the engine: the `specs` command line (cli.py), the benchmark runner
(bench.py, latency_stats.py) and the datasets (data/). The engine core never imports this
package, so the library needs none of its dependencies (tqdm, matplotlib, the GSM8K data)."""
