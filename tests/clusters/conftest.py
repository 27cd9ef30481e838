"""Cluster tests report what each failover cost, as the fault tests do (one line per fault)."""

from tests.faults.conftest import fault_report, pytest_terminal_summary

__all__ = ["fault_report", "pytest_terminal_summary"]
