"""kafka-python consumer groups: assignment through the group coordinator and committed offsets."""

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, RebalanceInProgressError
from kafka.admin import NewTopic


def produce(broker, topic, count, start=0):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for index in range(start, start + count):
        producer.send(topic, key=f"key-{index}".encode(), value=f"value-{index}".encode())
    producer.flush()
    producer.close()


def consume(broker, topic, group, want, **settings):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings,
    )
    values = []
    for _ in range(150):
        for records in consumer.poll(timeout_ms=200).values():
            values.extend(record.value.decode() for record in records)
        if len(values) >= want:
            break
    consumer.commit()
    consumer.close()
    return values


def test_group_consumer_commits_and_a_new_member_resumes(broker):
    KafkaAdminClient(bootstrap_servers=broker.bootstrap).create_topics(
        [NewTopic("py-group", num_partitions=3, replication_factor=1)]
    )
    produce(broker, "py-group", 90)
    first = consume(broker, "py-group", "py-group-1", 90)
    assert sorted(first) == sorted(f"value-{index}" for index in range(90))
    produce(broker, "py-group", 30, start=90)
    second = consume(broker, "py-group", "py-group-1", 30)
    assert sorted(second) == sorted(f"value-{index}" for index in range(90, 120)), "resumed from committed offsets"


def test_committed_offsets_survive_kill_9(broker):
    produce(broker, "py-kill", 40)
    assert len(consume(broker, "py-kill", "py-kill-group", 40)) == 40
    broker.kill9()
    broker.start()
    produce(broker, "py-kill", 10, start=40)
    again = consume(broker, "py-kill", "py-kill-group", 10)
    assert sorted(again) == sorted(f"value-{index}" for index in range(40, 50))


def test_groups_are_listed_and_described(broker):
    produce(broker, "py-listed", 5)
    consume(broker, "py-listed", "py-listed-group", 5)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)

    def listed():
        return [group["group_id"] if isinstance(group, dict) else group[0] for group in admin.list_groups()]

    assert "py-listed-group" in listed()
    offsets = admin.list_group_offsets({"py-listed-group": None})["py-listed-group"]
    assert sum(meta.offset for meta in offsets.values()) == 5
    described = admin.describe_groups(["py-listed-group"])
    assert described, "the group is described"
    admin.delete_groups(["py-listed-group"])
    assert "py-listed-group" not in listed()


def test_two_members_split_partitions_and_a_leaver_hands_them_over(broker):
    import threading
    import time

    KafkaAdminClient(bootstrap_servers=broker.bootstrap).create_topics(
        [NewTopic("py-split", num_partitions=6, replication_factor=1)]
    )
    produce(broker, "py-split", 600)
    consumed = []
    lock = threading.Lock()
    assignments = {}
    stop = {"a": threading.Event(), "b": threading.Event()}

    def member(name):
        consumer = KafkaConsumer(
            "py-split",
            bootstrap_servers=broker.bootstrap,
            group_id="py-split-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        while not stop[name].is_set():
            for records in consumer.poll(timeout_ms=100).values():
                with lock:
                    consumed.extend(record.value.decode() for record in records)
            try:
                consumer.commit()
            except (RebalanceInProgressError, CommitFailedError):
                # A commit that races a rebalance is refused, as Kafka refuses it; the next
                # poll joins the new generation. (Unhandled, it ended this member's thread and
                # left the test reading its assignment from before the rebalance.)
                continue
            with lock:
                assignments[name] = {tp.partition for tp in consumer.assignment()}
        consumer.close()

    threads = {name: threading.Thread(target=member, args=(name,)) for name in ("a", "b")}
    threads["a"].start()
    time.sleep(1)
    threads["b"].start()
    deadline = time.time() + 40
    split_seen = False
    while time.time() < deadline:
        with lock:
            a, b = assignments.get("a", set()), assignments.get("b", set())
            done = len(set(consumed)) == 600
        if a and b and not (a & b) and (a | b) == set(range(6)):
            split_seen = True
        if split_seen and done:
            break
        time.sleep(0.1)
    assert split_seen, f"the two members never split the 6 partitions: {assignments}"
    # b leaves; a must take over every partition and see new records.
    stop["b"].set()
    threads["b"].join(20)
    produce(broker, "py-split", 60, start=600)
    deadline = time.time() + 40
    handed_over = False
    while time.time() < deadline and not handed_over:
        with lock:
            handed_over = assignments.get("a") == set(range(6)) and len(set(consumed)) == 660
        time.sleep(0.1)
    # Checked while a still runs: once stopped, its last bookkeeping may race with its close.
    with lock:
        seen_by_a, everything = dict(assignments), set(consumed)
    stop["a"].set()
    threads["a"].join(20)
    assert handed_over, f"a did not take over all partitions: {seen_by_a}"
    assert everything == {f"value-{index}" for index in range(660)}, "every record was consumed"
