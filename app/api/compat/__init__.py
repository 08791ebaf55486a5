"""Drop-in ingestion for analytics SDKs teams already ship: Segment-compatible and PostHog-compatible routes."""
