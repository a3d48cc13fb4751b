"""The REST API over the one rerank pipeline (`ranker.rerank`), served by gunicorn (docs/serve.md)."""


def __getattr__(name: str):
    # `service.create_app` without importing Flask, LightGBM and the models for every `service.*` import.
    if name == "create_app":
        from service.app import create_app

        return create_app
    raise AttributeError(name)
