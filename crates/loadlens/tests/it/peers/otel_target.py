"""A tiny WSGI service instrumented with the official OpenTelemetry Python SDK.

Its server spans continue the trace of the incoming `traceparent` (the SDK's WSGI
instrumentation) and go to the OTLP/HTTP endpoint in OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.
Prints `listening on http://127.0.0.1:PORT` once it accepts connections.

    GET /ok    -> 200
    GET /fail  -> 503

Every entry of the incoming W3C `baggage` (the SDK's default propagators extract it) becomes a
`baggage.<key>` attribute of the server span, so a test can see what the service was told.
"""

import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry import baggage, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "otel-target"}))
# Synchronous export: every server span has reached the agent when its response is done.
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)


def app(environ, start_response):
    span = trace.get_current_span()
    for key, value in baggage.get_all().items():
        span.set_attribute(f"baggage.{key}", str(value))
    if environ.get("PATH_INFO") == "/fail":
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"down\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main():
    httpd = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(app), Server, Quiet)
    print(f"listening on http://127.0.0.1:{httpd.server_port}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        provider.shutdown()


if __name__ == "__main__":
    sys.exit(main())
