"""Port contract suites: each port's behaviour, written once, run against every implementation."""
