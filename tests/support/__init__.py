"""Helpers shared by the test suites: server fixtures and fakes."""
