"""The rerank pipeline that composes ranker, bandit and heuristics; the REST API and the CLI."""
