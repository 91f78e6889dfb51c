"""``python -m otel_sse``: the ``otel-sse`` command."""

from otel_sse.cli import main

raise SystemExit(main())
