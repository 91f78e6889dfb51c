"""``python -m otel_sse.cli``."""

from otel_sse.cli import main

raise SystemExit(main())
