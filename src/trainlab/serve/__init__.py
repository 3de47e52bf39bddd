"""`trainlab serve`: a checkpoint behind HTTP (the optional `serve` extra: FastAPI, uvicorn, prometheus-client).

settings.py  ServeSettings: the flags, checked once, passed to every worker
model.py     ServedModel: the Predictor, its description, model card, samples and the batch work
batching.py  Batcher: concurrent requests gathered into one forward pass, behind a bounded queue
metrics.py   Prometheus metrics
app.py       the FastAPI app: /v1, the Open Inference Protocol under /v2, /metrics, the page at /
server.py    binding the socket and running uvicorn (one process or several)
static/      the web page (HTML, CSS, JavaScript; no network, no build step)
"""
