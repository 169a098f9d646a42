"""kafka-python's transactional producer (an implementation of its own, independent of
librdkafka and the Java client) against the transaction coordinator: commits and aborts seen by
read_committed consumers, a fenced zombie, and offsets committed inside a transaction."""

import logging

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from conftest import wait_for

LOG = logging.getLogger(__name__)


def create_topic(broker, name):
    KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000).create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1)])


def transactional_producer(broker, transactional_id):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=transactional_id)
    producer.init_transactions()
    return producer


def values(broker, topic, isolation, count):
    """The first `count` values of partition 0 as a consumer of `isolation` reads them."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             isolation_level=isolation)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    read = []
    for _ in range(150):
        for records in consumer.poll(timeout_ms=200).values():
            read.extend(record.value.decode() for record in records)
        if len(read) >= count:
            break
    consumer.close()
    return read[:count] if len(read) >= count else read


def test_commits_and_aborts_are_seen_as_kafka_shows_them(broker):
    create_topic(broker, "py-txn")
    producer = transactional_producer(broker, "py-copier")
    LOG.info("kafka-python took the broker for Kafka %s", producer.config.get("api_version"))
    producer.begin_transaction()
    for value in ("c1", "c2"):
        producer.send("py-txn", value.encode())
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send("py-txn", b"a1")
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send("py-txn", b"c3")
    producer.commit_transaction()
    producer.close()

    assert values(broker, "py-txn", "read_committed", 3) == ["c1", "c2", "c3"]
    assert values(broker, "py-txn", "read_uncommitted", 4) == ["c1", "c2", "a1", "c3"]


def test_a_new_instance_fences_the_old_one(broker):
    create_topic(broker, "py-zombie")
    zombie = transactional_producer(broker, "py-fenced")
    zombie.begin_transaction()
    zombie.send("py-zombie", b"zombie")
    zombie.flush()
    successor = transactional_producer(broker, "py-fenced")
    successor.begin_transaction()
    successor.send("py-zombie", b"successor")
    successor.commit_transaction()
    with pytest.raises(KafkaError):
        zombie.commit_transaction()
    assert values(broker, "py-zombie", "read_committed", 1) == ["successor"]
    successor.close()
    zombie.close(timeout=1)


def test_offsets_sent_to_a_transaction_are_committed_with_it(broker):
    create_topic(broker, "py-offsets")
    producer = transactional_producer(broker, "py-offsets-copier")
    partition = TopicPartition("py-offsets", 0)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)

    producer.begin_transaction()
    producer.send_offsets_to_transaction({partition: OffsetAndMetadata(17, "", -1)}, "py-group")
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send_offsets_to_transaction({partition: OffsetAndMetadata(23, "", -1)}, "py-group")
    producer.commit_transaction()
    producer.close()

    def committed():
        offsets = admin.list_group_offsets({"py-group": None})["py-group"]
        return offsets.get(partition) is not None and offsets[partition].offset == 23
    wait_for(committed)
