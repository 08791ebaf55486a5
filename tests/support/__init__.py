"""Helpers shared by the test suites: the real server as a process, free ports, JSON log lines."""
