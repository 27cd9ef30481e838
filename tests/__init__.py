"""eventcore test suites."""
