"""What the demo runs besides otel-sse itself: a local, scripted OpenAI-compatible
model server (:mod:`otel_sse.demo.stub_model`), so that real SDKs and agent
frameworks can run end to end with no network and no API key."""
