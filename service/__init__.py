"""The rerank pipeline that composes ranker, bandit and heuristics; the REST API and the CLI."""


def __getattr__(name: str):
    # `service.create_app` without importing Flask, LightGBM and the models for every `service.*` import.
    if name == "create_app":
        from service.app import create_app

        return create_app
    raise AttributeError(name)
