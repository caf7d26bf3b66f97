"""`gender serve`: the web app of `gender.web` on Ray Serve.

`app.py` is the deployment (the app in every replica, `@serve.batch` dynamic batching, a
GPU replica's bf16 + channels_last) and the application builder that `serve.yaml` names;
`run.py` starts it on a local Ray or a cluster, waits until it answers, and takes it down.
`options.py` holds the settings and their checks (no Ray, no torch: `gender serve` refuses
a bad flag at once). `gender/` knows nothing of this package.
"""
