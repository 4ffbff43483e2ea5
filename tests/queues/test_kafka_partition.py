"""The Kafka backend partitions by Kafka's default partitioner (murmur2 of the key), so a dossier's
records land where any Kafka client producing by key would put them."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from queues.kafka_produce import murmur2, partition_of

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed Java ints)
JAVA = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "expected"), JAVA.items())
def test_murmur2_matches_the_java_client(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected & 0xFFFFFFFF


def test_murmur2_matches_aiokafka_on_every_tail_length() -> None:
    rng = random.Random(7)
    for length in range(0, 70):
        for _ in range(50):
            data = rng.randbytes(length)
            assert murmur2(data) == aiokafka_murmur2(data), data


def test_partition_of_is_the_default_partitioners_choice() -> None:
    for i in range(500):
        code = f"000.00.01.H55-240318-{i:05d}"
        assert partition_of(code, 6) == (aiokafka_murmur2(code.encode()) & 0x7FFFFFFF) % 6
