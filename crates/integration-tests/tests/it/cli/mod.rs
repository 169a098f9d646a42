//! The `cauce` command-line binary run as a real process against a real broker: topic and
//! cluster admin, produce and consume, groups, and perf.

use std::process::Output;

use cauce_integration_tests::cli::run_cauce;

mod admin;
mod data;
mod groups;
mod perf;

/// Runs `cauce --brokers <brokers> <args>` with no input.
fn cauce(brokers: &str, args: &[&str]) -> Output {
    run_cauce(brokers, args, "")
}

/// Runs `cauce --brokers <brokers> <args>` with `stdin` piped in.
fn cauce_with_input(brokers: &str, args: &[&str], stdin: &str) -> Output {
    run_cauce(brokers, args, stdin)
}
