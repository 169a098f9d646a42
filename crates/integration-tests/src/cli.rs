//! Running the real `cauce` command-line binary in tests.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::cauce_binary;

/// Runs `cauce --brokers <brokers> <args>` with `stdin` piped in (closed when empty).
pub fn run_cauce(brokers: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(cauce_binary())
        .arg("--brokers")
        .arg(brokers)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cauce");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for cauce")
}

/// Runs a command that must succeed and returns its stdout.
pub fn cauce_succeeds(brokers: &str, args: &[&str], stdin: &str) -> String {
    let output = run_cauce(brokers, args, stdin);
    assert!(
        output.status.success(),
        "cauce {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// Runs a command that must fail with a one-line `error: ...` on stderr; returns its exit
/// code and that line.
pub fn cauce_fails(brokers: &str, args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let output = run_cauce(brokers, args, stdin);
    assert!(!output.status.success(), "cauce {args:?} succeeded");
    let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "cauce {args:?} should explain itself in one line, wrote: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    (output.status.code(), stderr.trim_end().to_string())
}
