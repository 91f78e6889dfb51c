# The otel-sse gateway: the event stream and dashboard on 3000, OTLP/gRPC ingest on 4319.
# It listens on all interfaces, so it needs a token: OTEL_SSE_TOKEN (or --token-file).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otel_sse ./otel_sse
RUN pip install --no-cache-dir ".[fast]"
USER nobody
EXPOSE 3000 4319
CMD ["otel-sse", "serve", "--host", "0.0.0.0", "--port", "3000", "--grpc-port", "4319"]
