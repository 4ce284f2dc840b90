"""Each client writes >= 10 000 keyed records over 4 partitions with each codec
and reads every one back itself: keys, values, headers, timestamps, null and
empty fields, per-partition order and the acknowledged offsets all intact."""

import pytest

from clients import CLIENTS, CODECS, CONSUME, assert_same_records
from marks import consumer_marks

CASES = [pytest.param(client, codec, id=f"{client}-{codec}", marks=consumer_marks(client))
         for client in CLIENTS for codec in CODECS]


@pytest.fixture
def dataset(request, datasets):
    # Produced in setup, outside any xfail: a client that cannot even write fails.
    client, codec = request.node.callspec.params["client"], request.node.callspec.params["codec"]
    return datasets(client, codec)


@pytest.mark.parametrize("client,codec", CASES)
def test_roundtrip(bootstrap, dataset, client, codec):
    assert len(dataset.records) >= 10_000
    got = CONSUME[client](bootstrap, dataset.topic)
    assert_same_records(dataset, got, f"{client} consumer")
