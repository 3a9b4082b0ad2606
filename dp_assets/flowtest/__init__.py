"""Flow tests: test cases written next to a flow, run in process by ``dp test`` (docs/flow-tests.md).

- :mod:`~dp_assets.flowtest.model`: the test-case file (pydantic, ``extra="forbid"``);
- :mod:`~dp_assets.flowtest.rewrite`: the spec with fixtures and sink stand-ins swapped in;
- :mod:`~dp_assets.flowtest.harness`: the test catalog that records every node's value;
- :mod:`~dp_assets.flowtest.expect`: the assertions;
- :mod:`~dp_assets.flowtest.runner` and :mod:`~dp_assets.flowtest.discovery`: running them.
"""

from dp_assets.flowtest.discovery import NothingToTest, Target, find_targets
from dp_assets.flowtest.model import Expectation, Fixture, Sink, TestCase, TestFile
from dp_assets.flowtest.runner import (
    CaseResult,
    FlowTestRunner,
    TestFileError,
    load_test_file,
)

__all__ = [
    "CaseResult",
    "Expectation",
    "Fixture",
    "FlowTestRunner",
    "NothingToTest",
    "Sink",
    "Target",
    "TestCase",
    "TestFile",
    "TestFileError",
    "find_targets",
    "load_test_file",
]
