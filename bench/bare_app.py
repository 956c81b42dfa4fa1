"""The baseline for bench/webhook.py: a Flask endpoint that only reads the body and answers 200."""

from flask import Flask, request

app = Flask(__name__)


@app.post("/webhooks/zalo")
def receive() -> tuple[str, int]:
    request.get_data()
    return "", 200
