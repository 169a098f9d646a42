"""kcat from Debian (librdkafka 2.0), an older client that users still run."""

import subprocess


def kcat(*args, stdin=None):
    result = subprocess.run(["kcat", *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kcat_produces_and_consumes_keyed_compressed_records(broker):
    lines = "".join(f"key-{index}:value-{index}\n" for index in range(100))
    kcat("-P", "-b", broker.bootstrap, "-t", "kcat-topic", "-K", ":", "-z", "lz4", stdin=lines)
    out = kcat("-C", "-b", broker.bootstrap, "-t", "kcat-topic", "-e", "-f", "%k=%s@%o\n")
    assert out.splitlines() == [f"key-{index}=value-{index}@{index}" for index in range(100)]


def test_kcat_lists_the_broker_and_topics(broker):
    kcat("-P", "-b", broker.bootstrap, "-t", "listed", stdin="one\n")
    listing = kcat("-L", "-b", broker.bootstrap)
    assert f"broker 1 at {broker.bootstrap}" in listing
    assert 'topic "listed" with 1 partitions' in listing


def test_kcat_reads_from_an_offset_near_the_end(broker):
    kcat("-P", "-b", broker.bootstrap, "-t", "tail", stdin="".join(f"{index}\n" for index in range(10)))
    out = kcat("-C", "-b", broker.bootstrap, "-t", "tail", "-o", "-3", "-e", "-f", "%s\n")
    assert out.splitlines() == ["7", "8", "9"]
