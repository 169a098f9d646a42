"""kafka-python, a pure-Python client independent of librdkafka, against a real broker."""

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError


def admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)


def topic_configs(client, resource):
    described = client.describe_configs([resource], config_filter="all")["topic"][resource.name]
    return {name: entry["value"] if isinstance(entry, dict) else entry for name, entry in described.items()}


def read_all(broker, topic, partition, count, **settings):
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, **settings)
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    records = []
    for _ in range(100):
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
        if len(records) >= count:
            break
    consumer.close()
    return records


def test_records_round_trip_with_keys_headers_and_timestamps(broker):
    admin(broker).create_topics([NewTopic("py-round-trip", num_partitions=3, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    sent = []
    for index in range(300):
        future = producer.send(
            "py-round-trip",
            key=f"key-{index}".encode(),
            value=f"value-{index}".encode(),
            headers=[("index", str(index).encode())],
            timestamp_ms=1_700_000_000_000 + index,
            partition=index % 3,
        )
        sent.append(future)
    producer.flush()
    metadata = [future.get(timeout=10) for future in sent]
    for partition in range(3):
        offsets = [m.offset for m in metadata if m.partition == partition]
        assert offsets == list(range(100)), f"partition {partition} offsets"
        records = read_all(broker, "py-round-trip", partition, 100)
        assert len(records) == 100
        for position, record in enumerate(records):
            index = position * 3 + partition
            assert record.offset == position
            assert record.key == f"key-{index}".encode()
            assert record.value == f"value-{index}".encode()
            assert record.headers == [("index", str(index).encode())]
            assert record.timestamp == 1_700_000_000_000 + index


def test_acknowledged_records_survive_a_clean_restart(broker):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type="gzip")
    for index in range(500):
        producer.send("py-restart", value=f"record-{index}".encode()).get(timeout=10)
    producer.close()
    assert broker.stop() == 0
    broker.start()
    records = read_all(broker, "py-restart", 0, 500)
    assert [r.value for r in records] == [f"record-{index}".encode() for index in range(500)]


def test_admin_topics_partitions_and_configs(broker):
    client = admin(broker)
    client.create_topics([NewTopic("py-admin", num_partitions=2, replication_factor=1,
                                   topic_configs={"retention.ms": "3600000"})])
    try:
        client.create_topics([NewTopic("py-admin", num_partitions=2, replication_factor=1)])
        raise AssertionError("creating an existing topic must fail")
    except TopicAlreadyExistsError:
        pass
    client.create_partitions({"py-admin": NewPartitions(total_count=4)})
    described = client.describe_topics(["py-admin"])
    assert len(described[0]["partitions"]) == 4

    resource = ConfigResource(ConfigResourceType.TOPIC, "py-admin")
    entries = topic_configs(client, resource)
    assert entries["retention.ms"] == "3600000"
    assert entries["cleanup.policy"] == "delete"

    client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "py-admin", configs={"retention.ms": "1000"})])
    assert topic_configs(client, resource)["retention.ms"] == "1000"

    bad = ConfigResource(ConfigResourceType.TOPIC, "py-admin", configs={"retention.ms": "soon"})
    outcome = str(client.alter_configs([bad])["topic"]["py-admin"])
    assert "InvalidConfigurationError" in outcome and "retention.ms" in outcome, outcome
    assert topic_configs(client, resource)["retention.ms"] == "1000", "a refused change must change nothing"

    client.delete_topics(["py-admin"])
    assert "py-admin" not in client.list_topics()


def test_unknown_topic_is_reported_when_auto_create_is_off():
    from conftest import Broker

    broker = Broker(config="auto.create.topics.enable = false\n")
    try:
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
        assert not consumer.partitions_for_topic("does-not-exist")
        consumer.close()
        assert "does-not-exist" not in admin(broker).list_topics(), "auto-creation is off"
    finally:
        broker.close()
