#!/usr/bin/env python3
"""Captures real clients' requests as seeds for the fuzz targets.

Starts a `cauce server` behind a recording proxy (the broker advertises the proxy, so every
connection goes through it), drives it with kafka-python, kcat (an old librdkafka), the `cauce`
CLI (a current librdkafka) and the Java client (fuzz/java-seeds, built with Maven), and writes each distinct request frame to
fuzz/seeds/request_frame/ and its body, prefixed as the request_body target reads it, to
fuzz/seeds/request_body/; record batches seen in Produce requests go to fuzz/seeds/record_batch/.

    .venv/bin/python scripts/capture-fuzz-seeds.py [path/to/cauce]
"""

import asyncio
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = Path(os.environ.get("CAUCE_SEEDS_DIR", REPO / "fuzz" / "seeds"))
GENERATED = REPO / "crates" / "protocol" / "src" / "schema" / "generated.rs"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request_layouts():
    """(sorted api keys, {api key: (min version, flexible versions or None)}) from the
    generated layout table, to find where a request's header ends."""
    text = GENERATED.read_text()
    structs = re.findall(
        r'name: "([^"]+)",\s*versions: \((-?\d+), (\d+)\),\s*flexible: (None|Some\(\((\d+), (\d+)\)\))',
        text,
    )
    requests = re.search(r"REQUESTS: \[\(i16, usize\); \d+\] = \[(.*?)\];", text, re.S).group(1)
    layouts = {}
    for key, index in re.findall(r"\((\d+), (\d+)\)", requests):
        name, low, _high, flexible, flex_low, flex_high = structs[int(index)]
        layouts[int(key)] = (int(low), (int(flex_low), int(flex_high)) if flex_low else None)
    return sorted(layouts), layouts


def body_offset(frame, flexible):
    """Where the body starts: after api key, version, correlation id, client id (a nullable
    int16 string in every header version) and, for flexible versions, the tagged fields."""
    length = int.from_bytes(frame[8:10], "big", signed=True)
    offset = 10 + max(length, 0)
    if flexible:
        count = frame[offset]
        offset += 1
        for _ in range(count):
            offset += 1  # tag (small)
            size = frame[offset]
            offset += 1 + size
    return offset


class Recorder:
    def __init__(self):
        self.keys, self.layouts = request_layouts()
        self.seen = set()
        self.counts = {"request_frame": 0, "request_body": 0, "record_batch": 0, "decompress": 0,
                       "metadata_records": 0, "quorum_frame": 0, "segment_recovery": 0}

    def save(self, target, data):
        digest = hashlib.sha1(data).hexdigest()
        if (target, digest) in self.seen:
            return
        self.seen.add((target, digest))
        directory = SEEDS / target
        directory.mkdir(parents=True, exist_ok=True)
        (directory / digest).write_bytes(data)
        self.counts[target] += 1

    def record(self, frame):
        if len(frame) < 10 or len(frame) > 64 * 1024:
            return
        self.save("request_frame", frame)
        api_key = int.from_bytes(frame[0:2], "big", signed=True)
        version = int.from_bytes(frame[2:4], "big", signed=True)
        if api_key not in self.layouts:
            return
        low, flexible_range = self.layouts[api_key]
        flexible = flexible_range is not None and flexible_range[0] <= version <= flexible_range[1]
        try:
            body = frame[body_offset(frame, flexible):]
        except IndexError:
            return
        selector = bytes([self.keys.index(api_key), (version - low) & 0xFF])
        self.save("request_body", selector + body)
        if api_key == 0:
            # Produce: each record batch starts with an int64 base offset and an int32 length
            # followed by magic 2 at byte 16; find them by that shape.
            for match in re.finditer(rb"\x00{8}(?=.{8}\x02)", body, re.S):
                start = match.start()
                length = int.from_bytes(body[start + 8:start + 12], "big")
                if 49 <= length < len(body):
                    batch = body[start:start + 12 + length]
                    self.save("record_batch", batch)
                    codec = batch[22] & 0x07
                    if codec:
                        self.save("decompress", bytes([codec]) + batch[61:])


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def proxy(recorder, listen_port, broker_port, stop):
    async def handle(client_reader, client_writer):
        broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", broker_port)
        responses = asyncio.create_task(pipe(broker_reader, client_writer))
        try:
            while True:
                size = await client_reader.readexactly(4)
                frame = await client_reader.readexactly(int.from_bytes(size, "big"))
                recorder.record(frame)
                broker_writer.write(size + frame)
                await broker_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            broker_writer.close()
            responses.cancel()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await stop.wait()


def run(command, **kwargs):
    print("+", " ".join(command), flush=True)
    try:
        subprocess.run(command, check=False, timeout=180, stdout=subprocess.DEVNULL, **kwargs)
    except subprocess.TimeoutExpired:
        print("  (timed out; its requests are recorded all the same)", flush=True)


def drive_clients(cauce, bootstrap):
    python = REPO / ".venv" / "bin" / "python"
    kafka_python = f"""
from kafka import KafkaProducer, KafkaConsumer, KafkaAdminClient
from kafka.admin import NewTopic, NewPartitions, ConfigResource, ConfigResourceType
admin = KafkaAdminClient(bootstrap_servers="{bootstrap}")
admin.create_topics([NewTopic("seeds-py", 3, 1), NewTopic("seeds-compact", 1, 1, topic_configs={{"cleanup.policy": "compact"}})])
admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "seeds-py")])
admin.create_partitions({{"seeds-py": NewPartitions(4)}})
for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
    try:
        producer = KafkaProducer(bootstrap_servers="{bootstrap}", compression_type=codec, linger_ms=5)
    except Exception as error:
        print("codec", codec, "unavailable:", error)
        continue
    for i in range(20):
        producer.send("seeds-py", key=str(i).encode(), value=b"value-%d" % i, headers=[("h", b"v")])
        producer.send("seeds-compact", key=str(i).encode(), value=b"v")
    producer.flush()
    producer.close()
consumer = KafkaConsumer("seeds-py", bootstrap_servers="{bootstrap}", group_id="seeds-group",
                         auto_offset_reset="earliest", consumer_timeout_ms=3000)
for _ in consumer:
    pass
consumer.commit()
consumer.close()
for call in [lambda: admin.describe_consumer_groups(["seeds-group"]),
             lambda: admin.list_consumer_group_offsets("seeds-group"),
             lambda: admin.delete_topics(["seeds-compact"])]:
    try:
        call()
    except Exception as error:
        print("admin call failed:", error)
admin.close()
"""
    run([str(python), "-c", kafka_python])
    kcat = ["kcat", "-b", bootstrap]
    run(kcat + ["-L"])
    run(kcat + ["-P", "-t", "seeds-kcat", "-K:", "-z", "lz4"], input=b"a:1\nb:2\nc:3\n")
    run(kcat + ["-C", "-t", "seeds-kcat", "-e", "-o", "beginning"])
    run(kcat + ["-G", "seeds-kcat-group", "seeds-kcat", "-e"])
    java_seeds = REPO / "fuzz" / "java-seeds"
    run(["mvn", "-q", "-B", "-f", str(java_seeds / "pom.xml"), "compile", "dependency:build-classpath",
         "-Dmdep.outputFile=target/classpath.txt"])
    classpath = (java_seeds / "target" / "classpath.txt").read_text().strip()
    run(["java", "-cp", f"{java_seeds / 'target' / 'classes'}:{classpath}", "cauce.seeds.DriveJavaClient", bootstrap])
    cli = [cauce]
    run(cli + ["topic", "create", "seeds-cli", "--partitions", "2", "--brokers", bootstrap])
    run(cli + ["topic", "describe", "seeds-cli", "--brokers", bootstrap])
    run(cli + ["produce", "seeds-cli", "--brokers", bootstrap, "--compression", "zstd"], input=b"x\ny\nz\n")
    run(cli + ["consume", "seeds-cli", "--brokers", bootstrap, "--count", "3",
               "--group", "seeds-cli-group"])
    run(cli + ["group", "describe", "seeds-cli-group", "--brokers", bootstrap])
    run(cli + ["cluster", "info", "--brokers", bootstrap])


def main():
    cauce = sys.argv[1] if len(sys.argv) > 1 else str(REPO / "target" / "debug" / "cauce")
    broker_port, proxy_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="cauce-seeds-")
    server = subprocess.Popen(
        [cauce, "server", "--data-dir", data, "--listen", f"127.0.0.1:{broker_port}",
         "--advertised-listener", f"127.0.0.1:{proxy_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    recorder = Recorder()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(proxy(recorder, proxy_port, broker_port, stop)),
        daemon=True,
    )
    thread.start()
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", broker_port)) == 0:
                    break
            time.sleep(0.1)
        drive_clients(cauce, f"127.0.0.1:{proxy_port}")
    finally:
        loop.call_soon_threadsafe(stop.set)
        server.terminate()
        server.wait()
    # The metadata log the run wrote: its records, one JSON line each, for metadata_records;
    # and quorum frames of the application kind carrying a few of them, for quorum_frame.
    for log in Path(data).rglob("*.log"):
        contents, position, payloads = log.read_bytes(), 0, []
        while position + 8 <= len(contents):
            length = int.from_bytes(contents[position:position + 4], "big")
            payload = contents[position + 8:position + 8 + length]
            if len(payload) < length or not payload.startswith(b"{"):
                break
            payloads.append(payload)
            position += 8 + length
        if payloads:
            recorder.save("metadata_records", b"\n".join(payloads))
            frames = b"".join((len(p) + 1).to_bytes(4, "big") + b"\x04" + p for p in payloads[:8])
            recorder.save("quorum_frame", frames)
    # Segments and their offset indexes as the run left them, for segment_recovery.
    for segment in sorted(Path(data).rglob("*.log"))[:20]:
        index = segment.with_suffix(".index")
        if segment.parent.name == "metadata" or not index.exists():
            continue
        log_bytes = segment.read_bytes()[:32768]
        recorder.save("segment_recovery", len(log_bytes).to_bytes(4, "little") + log_bytes
                      + index.read_bytes()[:4096])
    print("seeds written:", recorder.counts)


if __name__ == "__main__":
    main()
