//! Group members as separate processes: [`GroupMemberProcess`] runs the
//! `cauce-test-group-consumer` binary (librdkafka), collects what it prints as typed
//! [`MemberEvent`]s, and can stop it with SIGTERM or `kill -9` it.
//!
//! The binary's path comes from the test (`env!("CARGO_BIN_EXE_cauce-test-group-consumer")`),
//! which cargo sets only for the package's integration tests.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One line a member printed, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberLine {
    /// It consumed a record.
    Record {
        /// The record's partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// The record's value.
        value: String,
    },
    /// The coordinator accepted a commit: `offset` is the next offset to read.
    Committed {
        /// The committed partition.
        partition: i32,
        /// The committed offset.
        offset: i64,
    },
    /// A rebalance ended with these partitions owned.
    Assigned(BTreeSet<i32>),
    /// It stopped cleanly.
    Stopped,
    /// Anything else (commit failures, errors), kept for failure messages.
    Other(String),
}

impl MemberLine {
    /// Parses one line of the binary's output; unknown lines become [`MemberLine::Other`].
    pub fn parse(line: &str) -> MemberLine {
        MemberLine::parse_known(line).unwrap_or_else(|| MemberLine::Other(line.to_string()))
    }

    fn parse_known(line: &str) -> Option<MemberLine> {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "RECORD" => {
                let mut words = rest.splitn(3, ' ');
                Some(MemberLine::Record {
                    partition: words.next()?.parse().ok()?,
                    offset: words.next()?.parse().ok()?,
                    value: words.next()?.to_string(),
                })
            }
            "COMMITTED" => {
                let (partition, offset) = rest.split_once(' ')?;
                Some(MemberLine::Committed {
                    partition: partition.parse().ok()?,
                    offset: offset.parse().ok()?,
                })
            }
            "ASSIGNED" => rest
                .split_whitespace()
                .map(|partition| partition.parse().ok())
                .collect::<Option<BTreeSet<i32>>>()
                .map(MemberLine::Assigned),
            "STOPPED" => Some(MemberLine::Stopped),
            _ => None,
        }
    }
}

/// A parsed line and when the test saw it.
#[derive(Debug, Clone)]
pub struct MemberEvent {
    /// When the reader thread received the line.
    pub seen_at: Instant,
    /// The line.
    pub line: MemberLine,
}

/// A running `cauce-test-group-consumer` process and everything it printed so far.
pub struct GroupMemberProcess {
    /// A name for messages, such as "A".
    pub name: String,
    /// The process; `None` once it exited and was reaped.
    child: Option<Child>,
    /// Its stdin: the member runs while this stays open.
    stdin: Option<ChildStdin>,
    /// Its output, appended by a reader thread.
    events: Arc<Mutex<Vec<MemberEvent>>>,
}

impl GroupMemberProcess {
    /// Starts a member of `group` subscribed to `topic` with the given assignment strategy and
    /// extra arguments (such as `--processing-ms=500`).
    pub fn start(
        binary: &Path,
        name: &str,
        bootstrap: &str,
        group: &str,
        topic: &str,
        strategy: &str,
        extra_args: &[&str],
    ) -> GroupMemberProcess {
        let mut child = Command::new(binary)
            .args([bootstrap, group, topic, strategy])
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {}: {error}", binary.display()));
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let events = Arc::new(Mutex::new(Vec::new()));
        let appended = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                appended.lock().unwrap().push(MemberEvent {
                    seen_at: Instant::now(),
                    line: MemberLine::parse(&line),
                });
            }
        });
        GroupMemberProcess {
            name: name.to_string(),
            child: Some(child),
            stdin,
            events,
        }
    }

    /// Whether the process has not been stopped or killed by the test.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A copy of everything it printed so far.
    pub fn events(&self) -> Vec<MemberEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The lines it printed so far.
    pub fn lines(&self) -> Vec<MemberLine> {
        self.events().into_iter().map(|event| event.line).collect()
    }

    /// The partitions of its last `ASSIGNED` line and when it was seen, if any.
    pub fn last_assignment(&self) -> Option<(Instant, BTreeSet<i32>)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|event| match &event.line {
                MemberLine::Assigned(partitions) => Some((event.seen_at, partitions.clone())),
                _ => None,
            })
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the process to exit; the output reader
    /// is given a moment to take the last lines.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("member is not running");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {}", self.name);
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "member {} did not exit within {timeout:?} of SIGTERM",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.stdin = None;
        self.wait_for_line(Duration::from_secs(2), |line| {
            matches!(line, MemberLine::Stopped)
        });
        status
    }

    /// Sends SIGKILL and reaps the process: it gets no chance to commit or leave the group.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            let _ = child.wait();
        }
        self.stdin = None;
    }

    /// Waits (at most `timeout`) until the most recent printed line satisfies `predicate`.
    pub fn wait_for_latest_line(
        &self,
        timeout: Duration,
        predicate: impl Fn(&MemberLine) -> bool,
    ) -> bool {
        self.wait_for_events(timeout, |events| {
            events.last().is_some_and(|event| predicate(&event.line))
        })
    }

    /// Waits (at most `timeout`) until some printed line satisfies `predicate`.
    pub fn wait_for_line(
        &self,
        timeout: Duration,
        predicate: impl Fn(&MemberLine) -> bool,
    ) -> bool {
        self.wait_for_events(timeout, |events| {
            events.iter().any(|event| predicate(&event.line))
        })
    }

    /// Polls the printed events until `condition` holds or `timeout` passes.
    fn wait_for_events(
        &self,
        timeout: Duration,
        condition: impl Fn(&[MemberEvent]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(&self.events.lock().unwrap()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for GroupMemberProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
