//! Shared helpers for tests that run real `cauce` processes and real Kafka clients.
//!
//! [`BrokerProcess`] starts `cauce server` on a free loopback port with its own data directory,
//! waits until it says it listens, and can stop it, `kill -9` it and restart it on the same port
//! and data. [`RawClient`] speaks the wire protocol byte by byte, for tests of malformed input,
//! over a `cauce-client` connection.
//!
//! # Layout
//!
//! - this file: [`BrokerProcess`] and [`RawClient`], the process and the connection (a blocking
//!   facade over `cauce_client::Connection`).
//! - [`raw`]: one-partition CreateTopics, Produce, Fetch and ListOffsets calls over a
//!   [`RawClient`], record batches, decoding of fetched records, and Kafka error codes.
//! - [`clients`]: librdkafka helpers: admin topic creation, a producer with test settings, and a
//!   consumer that reads a partition from its first offset.
//! - [`cluster`]: a cluster of `cauce server` processes, each a controller voter and a broker,
//!   and the Metadata questions tests ask it.
//! - [`network`]: a TCP proxy in front of every listener, to cut a node off from the others.
//! - [`acked`]: an idempotent `acks=all` producer that records what was acknowledged, and the
//!   checks that every acknowledged record is stored once, in order, after faults.
//! - [`group_protocol`]: classic consumer-group requests over a [`RawClient`].
//! - [`group_members`]: group members as separate processes (the `cauce-test-group-consumer`
//!   binary), stopped or killed by the test.
//! - [`cli`]: running the `cauce` binary's commands.
//! - `bin/`: `cauce-test-group-consumer` (a librdkafka group member as a process) and
//!   `cauce-produce-bench` (a produce throughput benchmark).
//!
//! The tests themselves are one test binary, `tests/it/`, with a module per area (storage, groups,
//! cluster, cli, ...) so that related ones sort together and librdkafka is linked once.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use cauce_client::{ClientError, ClientOptions, Connection};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub mod acked;
pub mod cli;
pub mod clients;
pub mod cluster;
pub mod group_members;
pub mod group_protocol;
pub mod network;
pub mod raw;

/// How long a broker may take to say it listens before the test fails.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The `cauce` binary built with this workspace.
pub fn cauce_binary() -> PathBuf {
    if let Ok(path) = std::env::var("CAUCE_BIN") {
        return PathBuf::from(path);
    }
    // Test binaries live in target/<profile>/deps; the cauce binary one level up.
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let binary = dir.join("cauce");
    assert!(
        binary.exists(),
        "{} is missing: build the workspace first (cargo build)",
        binary.display()
    );
    binary
}

/// An address where nothing listens, for tests of unreachable brokers. Port 1 is privileged and
/// outside the ephemeral range that [`free_port`] and so every test broker draws from: a port
/// that `free_port` returned is free only at that moment, and a broker of a test running in
/// parallel may listen on it a moment later (seen: `topic list` against a "closed" port
/// succeeded).
pub const CLOSED_ADDRESS: &str = "127.0.0.1:1";

/// A free port on 127.0.0.1, never one this process was given before. The kernel hands a port
/// just released to the next `bind(0)` often enough that a cluster's nodes got the same port
/// twice (seen: two voters on one controller port, a metrics listener on another node's
/// controller port), so the ports handed out are remembered.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// A `cauce server` child process.
pub struct BrokerProcess {
    /// The running process, if any.
    child: Option<Child>,
    /// Where clients reach it; kept across restarts.
    pub address: SocketAddr,
    /// Where it listens: `address` unless a proxy stands in front of it.
    listen: SocketAddr,
    /// Its data directory; deleted with this value.
    data: tempfile::TempDir,
    /// Extra TOML configuration written to the config file.
    config_toml: String,
    /// How long the last start took until the broker said it listens.
    pub last_startup: Duration,
}

impl BrokerProcess {
    /// Starts a broker with default configuration.
    pub fn start() -> BrokerProcess {
        BrokerProcess::start_with_config("")
    }

    /// Starts a broker with extra TOML configuration (Kafka key names).
    pub fn start_with_config(config_toml: &str) -> BrokerProcess {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        BrokerProcess::start_behind(address, address, config_toml)
    }

    /// Starts a broker listening on `listen` that clients reach at `address` (a proxy in front
    /// of it, which the configuration should advertise).
    pub fn start_behind(
        listen: SocketAddr,
        address: SocketAddr,
        config_toml: &str,
    ) -> BrokerProcess {
        let data = tempfile::Builder::new()
            .prefix("cauce-test-")
            .tempdir()
            .expect("temp dir");
        let mut broker = BrokerProcess {
            child: None,
            address,
            listen,
            data,
            config_toml: config_toml.to_string(),
            last_startup: Duration::ZERO,
        };
        broker.launch();
        broker
    }

    /// The bootstrap string for clients.
    pub fn bootstrap(&self) -> String {
        self.address.to_string()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data.path().join("data")
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn launch(&mut self) {
        let config_path = self.data.path().join("cauce.toml");
        std::fs::write(&config_path, &self.config_toml).expect("write config");
        let started = Instant::now();
        let mut child = Command::new(cauce_binary())
            .arg("server")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.listen.to_string())
            .env(
                "RUST_LOG",
                std::env::var("CAUCE_TEST_LOG").unwrap_or_else(|_| "info,openraft=off".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cauce");
        let stdout = child.stdout.take().expect("stdout");
        let (ready_sender, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if line.starts_with("cauce listening on") {
                    let _ = ready_sender.send(());
                }
            }
        });
        if ready.recv_timeout(STARTUP_TIMEOUT).is_err() {
            let _ = child.kill();
            panic!("cauce did not report listening within {STARTUP_TIMEOUT:?}");
        }
        self.last_startup = started.elapsed();
        self.child = Some(child);
    }

    /// Sends SIGKILL and reaps the process: nothing gets to flush.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("broker did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "stop or kill the broker before restarting it"
        );
        self.launch();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Asserts that the broker at `address` still answers ApiVersions on a fresh connection.
pub fn assert_still_serving(address: SocketAddr) {
    let mut client = RawClient::connect(address);
    let response: ApiVersionsResponse = client.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("cauce-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0")),
    );
    assert_eq!(response.error_code, 0);
    assert!(!response.api_keys.is_empty());
}

/// A client that writes frames by hand, for malformed and edge-case requests: a blocking facade
/// over a [`cauce_client::Connection`] that never negotiates versions, so the broker sees only
/// what the test sends.
pub struct RawClient {
    /// The connection.
    connection: Connection,
    /// Drives the connection; each call blocks on it, as the tests are synchronous. Taken
    /// only by `drop`.
    runtime: Option<tokio::runtime::Runtime>,
}

/// How long a read may wait for the broker before it counts as no answer.
const RAW_READ_TIMEOUT: Duration = Duration::from_secs(10);

impl RawClient {
    /// Connects to a broker.
    pub fn connect(address: SocketAddr) -> RawClient {
        RawClient::connect_as(address, "cauce-raw-test")
    }

    /// Connects to a broker with the client id `client_id` in every request header (Kafka
    /// lets `__admin_client` write internal topics).
    pub fn connect_as(address: SocketAddr, client_id: &str) -> RawClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let options = ClientOptions {
            client_id: client_id.to_string(),
            connect_timeout: RAW_READ_TIMEOUT,
            request_timeout: RAW_READ_TIMEOUT,
            // Tests read whatever the broker answers, however large.
            max_response_bytes: i32::MAX as usize,
            negotiate_versions: false,
        };
        let connection = block_on(
            Some(&runtime),
            Connection::connect(&address.to_string(), &options),
        )
        .expect("connect");
        RawClient {
            connection,
            runtime: Some(runtime),
        }
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        block_on(self.runtime.as_ref(), self.connection.send_raw(bytes)).map_err(
            |error| match error {
                ClientError::Io { source, .. } => source,
                other => std::io::Error::other(other.to_string()),
            },
        )
    }

    /// Encodes and sends a request, returning its correlation id.
    pub fn send<R: Encodable + Sync>(&mut self, api_key: ApiKey, version: i16, request: &R) -> i32 {
        block_on(
            self.runtime.as_ref(),
            self.connection.send(api_key, version, request),
        )
        .expect("send")
    }

    /// Reads one response frame; `None` if the broker closed the connection (or sent nothing
    /// within the read timeout).
    pub fn read_frame(&mut self) -> Option<Bytes> {
        block_on(self.runtime.as_ref(), self.connection.read_frame()).ok()
    }

    /// Reads and decodes a response to `api_key` at `version`.
    pub fn receive<R: Decodable>(&mut self, api_key: ApiKey, version: i16) -> (i32, R) {
        let mut frame = self.read_frame().expect("broker closed the connection");
        let header =
            ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).unwrap();
        let response = R::decode(&mut frame, version).unwrap();
        assert_eq!(frame.remaining(), 0, "response has trailing bytes");
        (header.correlation_id, response)
    }

    /// Sends a request and waits for its response.
    pub fn call<Q: Encodable + Sync, R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Q,
    ) -> R {
        let correlation_id = self.send(api_key, version, request);
        let (received, response) = self.receive(api_key, version);
        assert_eq!(received, correlation_id);
        response
    }

    /// Whether the broker closes the connection (end of stream or a reset) within the read
    /// timeout; a read that only times out is not a close.
    pub fn is_closed_by_broker(&mut self) -> bool {
        block_on(
            self.runtime.as_ref(),
            self.connection.is_closed_by_peer(RAW_READ_TIMEOUT),
        )
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async test's thread may not do; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `future` on the client's own runtime. Async tests call the client too, and a runtime
/// cannot block inside another one's thread, so there it runs on a thread of its own.
fn block_on<F>(runtime: Option<&tokio::runtime::Runtime>, future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let runtime = runtime.expect("the raw client's runtime lives until it is dropped");
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(future);
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(future))
            .join()
            .expect("the raw client's thread panicked")
    })
}
