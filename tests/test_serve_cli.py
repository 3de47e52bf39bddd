"""`trainlab serve` as a user starts it: the lines it prints, one-line refusals, a clean stop on SIGTERM with
requests in flight, several workers, and a bounded load test against 127.0.0.1 (no timing assertions)."""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from trainlab.layout import CURVES_FILE
from trainlab.testing.serving import free_port, start_server, wait_until_ready

from conftest import assert_one_line_error, train_tiny_run

pytest.importorskip("fastapi", reason="the serve extra is not installed")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("served"))[1]


@pytest.fixture(scope="module")
def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (28, 28), 0).save(buffer, format="PNG")
    return buffer.getvalue()


class Server:
    """`python -m trainlab serve RUN --port P ...` as a subprocess, one torch thread, stopped at the end."""

    def __init__(self, run: Path, *flags: str):
        self.port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = start_server(
            run, self.port, *flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        wait_until_ready(self.process, f"http://127.0.0.1:{self.port}", 90, poll=0.2)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then (exit status, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return self.process.returncode, stderr


def test_serve_prints_the_page_and_docs_urls_and_stops_cleanly_on_sigterm_with_a_request_in_flight(run_dir, png):
    server = Server(run_dir, "--token", "s3cret")
    try:
        headers = {"Content-Type": "image/png", "Authorization": "Bearer s3cret"}
        slow = {}

        def in_flight():  # a multipart request of 200 pictures: still running when SIGTERM comes
            boundary = "trainlab-test"
            parts = b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{i}.png"\r\n'
                f"Content-Type: image/png\r\n\r\n".encode()
                + png
                + b"\r\n"
                for i in range(200)
            )
            body = parts + f"--{boundary}--\r\n".encode()
            form = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": "Bearer s3cret"}
            slow["answer"] = server.request("POST", "/v1/predict", body, form)

        assert server.request("POST", "/v1/predict", png, headers)[0] == 200
        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(0.05)
    finally:
        status, stderr = server.stop()
    thread.join(30)
    assert status == 0, stderr
    lines = stderr.splitlines()
    assert lines[0].startswith(f"Serving run (mlp, 10 classes) from {run_dir / 'checkpoints'}")
    assert f"  page:    http://127.0.0.1:{server.port}/#token=s3cret" in lines
    assert f"  API:     http://127.0.0.1:{server.port}/docs" in lines
    assert lines[-1] == "Stopped on SIGTERM: the requests in flight were answered"
    assert "Traceback" not in stderr
    status, answer = slow["answer"]
    assert status == 200 and len(answer["predictions"]) == 200  # the request in flight finished


def test_two_workers_answer_2000_requests_at_concurrency_16_without_errors_and_count_them_all(run_dir, png):
    """The bounded load test, against two worker processes sharing the port: /metrics adds up both."""
    server = Server(run_dir, "--workers", "2")
    failures: list[str] = []
    answered = [0] * 16

    def client(slot: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)  # keep-alive, as wrk does
        try:
            for _ in range(125):
                connection.request("POST", "/v1/predict", body=png, headers={"Content-Type": "image/png"})
                response = connection.getresponse()
                body = json.loads(response.read())
                if response.status != 200 or body["predictions"][0]["label"] not in body_classes:
                    failures.append(f"{response.status}: {body}")
                answered[slot] += 1
        except OSError as exc:
            failures.append(repr(exc))
        finally:
            connection.close()

    try:
        body_classes = set(server.request("GET", "/v1/model")[1]["classes"])
        threads = [threading.Thread(target=client, args=(slot,)) for slot in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert failures == []
        assert sum(answered) == 2000
        assert server.request("GET", "/v1/health") == (200, {"status": "ok"})
        assert server.request("POST", "/v1/predict", png, {"Content-Type": "image/png"})[0] == 200
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        connection.close()
        counted = [line for line in text.splitlines() if line.startswith("trainlab_images_total")]
        assert counted == ["trainlab_images_total 2001.0"]  # every worker's images, whichever answered
    finally:
        status, stderr = server.stop()
    assert status == 0, stderr


@pytest.mark.parametrize(
    "flags, fragments",
    [
        (("--host", "0.0.0.0"), ("--host 0.0.0.0 lets other machines reach the model; give --token T",)),
        (("--port", "70000"), ("--port must be between 0 and 65,535, got 70000",)),
        (("--workers", "0"), ("--workers must be between 1 and 64, got 0",)),
        (("--max-batch", "0"), ("--max-batch must be between 1 and 4,096, got 0",)),
        (("--max-upload-mb", "0"), ("--max-upload-mb must be above 0 and at most 1024, got 0",)),
        (("--max-wait-ms", "-1"), ("--max-wait-ms must be between 0 and 1000, got -1",)),
        (("--max-request-pixels", "0"), ("--max-request-pixels must be between 1 and 10,000,000,000, got 0",)),
        (("--token", " "), ("--token is empty",)),
    ],
)
def test_bad_serve_flags_are_one_line_and_exit_2(run_main, run_dir, flags, fragments):
    assert_one_line_error(run_main("serve", run_dir, *flags), *fragments)


def test_a_missing_checkpoint_is_one_line_and_exit_2(run_main, tmp_path):
    assert_one_line_error(run_main("serve", tmp_path / "nothing"), "no such checkpoint file or run directory")


def test_a_taken_port_is_one_line_and_exit_2(run_main, run_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_main("serve", run_dir, "--port", str(port))
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is in use; pick another with --port")


def test_missing_serving_packages_name_the_extra(run_main, run_dir, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert_one_line_error(
        run_main("serve", run_dir), "serving needs uvicorn, which is not installed; ", "pip install 'trainlab[serve]'"
    )


def test_a_report_linked_out_of_the_run_directory_is_404_and_start_up_says_why_it_is_skipped(run_dir, tmp_path):
    copy = shutil.copytree(run_dir, tmp_path / "linked")
    secret = tmp_path / "secret.txt"
    secret.write_text("a password\n")
    (copy / CURVES_FILE).symlink_to(secret)

    server = Server(copy)
    try:
        status, body = server.request("GET", "/v1/model/reports/learning_curves.png")
        _, card = server.request("GET", "/v1/model")
    finally:
        code, stderr = server.stop()

    assert (status, body) == (404, {"error": "no report 'learning_curves'; this model has: none"})
    assert card["reports"] == {}
    assert code == 0, stderr
    assert (
        f"  not serving the report {CURVES_FILE}: it is a link to {secret.resolve()}, outside the run directory; "
        "only regular files inside the run directory are served\n"
    ) in stderr
    assert "a password" not in stderr


@pytest.mark.parametrize("kind", ["fifo", "character device"])
def test_a_checkpoint_that_is_no_regular_file_is_one_line_and_exit_2_without_blocking(kind, tmp_path):
    if kind == "fifo":
        checkpoint = tmp_path / "model.pt"
        os.mkfifo(checkpoint)  # no writer: opening it to read would wait for ever
    else:
        checkpoint = Path("/dev/zero")  # endless bytes: reading it whole would never end
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TRAINLAB_TOKEN", None)
    command = [sys.executable, "-m", "trainlab", "serve", str(checkpoint), "--port", "0"]

    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)

    assert_one_line_error(result, str(checkpoint))
