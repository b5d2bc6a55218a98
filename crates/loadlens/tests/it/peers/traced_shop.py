"""Two small WSGI services instrumented with the official OpenTelemetry Python SDK, for the
trace receiver's tests: `shop` and `pricing`. Usage:

    traced_shop.py shop|pricing

Environment: OTLP_PROTOCOL (`grpc` or `http/protobuf`), OTLP_ENDPOINT (the receiver: a gRPC
`http://HOST:PORT` or an OTLP/HTTP `http://HOST:PORT/v1/traces`), PRICING_URL (for `shop`).
Prints `listening on http://127.0.0.1:PORT` once it accepts connections.

    shop     GET /orders -> a `SELECT orders` span (db.system postgresql) sleeping 20 ms,
                            a `cache get` span sleeping 5 ms, then GET PRICING_URL/price in
                            a client span, the trace context injected
    pricing  GET /price  -> a `compute price` span sleeping 10 ms

Server spans come from the SDK's WSGI instrumentation (they continue the incoming
`traceparent`); spans are exported in batches every 100 ms (OTEL_BSP_SCHEDULE_DELAY).
"""

import os
import socketserver
import sys
import time
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

ROLE = sys.argv[1]
if os.environ.get("OTLP_PROTOCOL") == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=os.environ["OTLP_ENDPOINT"], insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=os.environ["OTLP_ENDPOINT"])

provider = TracerProvider(resource=Resource.create({"service.name": ROLE}))
provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("traced_shop")


def shop(environ, start_response):
    with tracer.start_as_current_span("SELECT orders", attributes={"db.system": "postgresql"}):
        time.sleep(0.020)
    with tracer.start_as_current_span("cache get"):
        time.sleep(0.005)
    with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT):
        headers = {}
        propagate.inject(headers)
        req = urllib.request.Request(os.environ["PRICING_URL"] + "/price", headers=headers)
        with urllib.request.urlopen(req) as r:
            r.read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"orders\n"]


def pricing(environ, start_response):
    with tracer.start_as_current_span("compute price"):
        time.sleep(0.010)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"42\n"]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main():
    app = shop if ROLE == "shop" else pricing
    httpd = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(app), Server, Quiet)
    print(f"listening on http://127.0.0.1:{httpd.server_port}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        provider.shutdown()


if __name__ == "__main__":
    sys.exit(main())
