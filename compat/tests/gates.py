"""Tests of features a broker may lack, gated on what it advertises in ApiVersions.

A gated test runs everywhere. When the broker under test does not list the API
the feature needs, the test is a strict xfail that must fail with
BrokerLacksApi (the client said the broker does not support that API): any
other failure stays a failure, and once the broker advertises the API the mark
is gone and the test must pass. Against Apache Kafka they are plain tests.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from kafka_ref import api_versions  # noqa: E402

# feature -> (API key it needs, reason while the broker lacks it)
FEATURES = {
    "groups": (10, "needs consumer groups (issue 3)"),                 # FindCoordinator
    "idempotence": (22, "needs InitProducerId (issue 4)"),             # InitProducerId
    "delete-records": (21, "needs DeleteRecords (not implemented yet)"),
    "incremental-alter-configs": (44, "needs IncrementalAlterConfigs (not implemented yet)"),
}


class BrokerLacksApi(AssertionError):
    """A client failed because the broker does not support an API it needed
    (the Java client's UnsupportedVersionException naming that API, a tool's
    error saying so)."""


@functools.lru_cache(maxsize=None)
def advertised(bootstrap: str) -> frozenset:
    """The API keys the broker at bootstrap lists in ApiVersions (v0)."""
    host, _, port = bootstrap.rpartition(":")
    err, ranges = api_versions(host, int(port))
    assert err == 0, f"ApiVersions v0 to {bootstrap} answered error {err}"
    return frozenset(ranges)


def has(bootstrap: str, feature: str) -> bool:
    return FEATURES[feature][0] in advertised(bootstrap)


def gate(request, bootstrap: str, feature: str) -> None:
    """Call first in a test that needs feature: a strict xfail while the broker lacks it."""
    if not has(bootstrap, feature):
        request.applymarker(pytest.mark.xfail(strict=True, raises=BrokerLacksApi,
                                              reason=FEATURES[feature][1]))
