"""`trainlab serve`: a checkpoint behind HTTP (the optional `serve` extra: FastAPI, uvicorn, prometheus-client).

settings.py  ServeSettings: the flags, checked once, passed to every worker
model.py     ServedModel: the Predictor, its description, model card, samples and the batch work
batching.py  Batcher: concurrent requests gathered into one forward pass, behind a bounded queue
metrics.py   Prometheus metrics
serving.py   Serving: what every route shares (the model, its batcher, the decoding pool, readiness)
api_v1.py    the /v1 JSON API's routes: health, model card, reports, samples, predict
api_v2.py    the Open Inference Protocol's routes under /v2
page.py      the page at / and its static files
uploads.py   a request's pictures (body or multipart), decoded off the event loop under the pixel bounds
oip.py       an Open Inference Protocol tensor checked and made a uint8 batch
reports.py   the run's report PNGs, only regular files inside the run directory
errors.py    every error answer as JSON {"error": ...}, and the app's exception handlers
guard.py     the ASGI middleware: token, upload limit, metrics of every request
app.py       the FastAPI app: the routers, the handlers and the guard put together
server.py    binding the socket and running uvicorn (one process or several)
static/      the web page (HTML, CSS, JavaScript; no network, no build step)
"""
