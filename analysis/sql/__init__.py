"""The SQL each backend runs on the store itself: the bulk read into the analysis engine, and the few
look-ups that go back to the store (rows by seq, one action's rows, metadata of one key)."""
