#!/bin/sh
# A producer without OpenTelemetry (any language, here curl): POST /v1/events
# with a JSON event or an array of them; the gateway answers 202 with their ids.
#
#     sh examples/publish.sh                          # to http://127.0.0.1:3000
#     sh examples/publish.sh http://gateway.example:3000
#
# Behind a token, the producer token goes in the header: $OTEL_SSE_PRODUCER_TOKEN,
# else $OTEL_SSE_TOKEN (a gateway with one token takes it for both).
set -eu
url="${1:-http://127.0.0.1:3000}"
token="${OTEL_SSE_PRODUCER_TOKEN:-${OTEL_SSE_TOKEN:-}}"
set -- -sS --fail-with-body -X POST "$url/v1/events" -H 'Content-Type: application/json'
if [ -n "$token" ]; then
    set -- "$@" -H "Authorization: Bearer $token"
fi
curl "$@" --data-binary @- <<'JSON'
[
  {"event": "deploy:started", "data": {"service": "checkout", "version": "1.4.2"}},
  {"event": "deploy:finished", "data": {"service": "checkout", "version": "1.4.2",
                                         "durationMs": 5230, "ok": true}}
]
JSON
echo
