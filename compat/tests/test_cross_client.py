"""Cross-client matrix: what each client wrote, every other client reads back
identically. Codecs rotate over the pairs so each consumer meets several."""

import pytest

from clients import CLIENTS, CODECS, CONSUME, assert_same_records
from marks import consumer_marks

CASES = [pytest.param(p, c, CODECS[(i + j) % len(CODECS)], id=f"{p}-to-{c}-{CODECS[(i + j) % len(CODECS)]}",
                      marks=consumer_marks(c))
         for i, p in enumerate(CLIENTS) for j, c in enumerate(CLIENTS) if p != c]


@pytest.fixture
def dataset(request, datasets):
    params = request.node.callspec.params
    return datasets(params["producer"], params["codec"])


@pytest.mark.parametrize("producer,consumer,codec", CASES)
def test_cross_client(bootstrap, dataset, producer, consumer, codec):
    got = CONSUME[consumer](bootstrap, dataset.topic)
    assert_same_records(dataset, got, f"{consumer} reading {producer}'s {codec} records")
