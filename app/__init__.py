"""trm-serve's HTTP service: FastAPI routes over the step-batching inference engine.

`app.main.create_app(settings)` builds the application; `python -m app` serves it with uvicorn.
"""
