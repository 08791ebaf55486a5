"""Drop-in ingestion for analytics SDKs teams already ship: Segment-compatible and PostHog-compatible routes."""

# The PostHog capture paths: they read large batches their own bounded way, so the body limit gives them theirs.
POSTHOG_PATHS = ("/batch/", "/capture/", "/e/", "/i/v0/e/")
