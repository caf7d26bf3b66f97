"""The web app of `gender serve`: a page at `/` and a JSON API, as a plain ASGI app.

It knows nothing of Ray: `create_app` takes a backend (anything with `info`,
`image_size` and `async predict(images) -> P(male) list`). `LocalBackend` runs a
`Predictor` in this process (tests, and anyone who wants the app without Ray); the Ray
Serve deployment in `serving/` is another backend, with dynamic batching.
"""

from gender.web.app import Backend, LocalBackend, create_app, model_info

__all__ = ["Backend", "LocalBackend", "create_app", "model_info"]
