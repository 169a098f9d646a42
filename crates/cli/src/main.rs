//! `cauce`: the broker server and the command-line admin tools.
//!
//! # Layout
//!
//! - this file: the command line and the exit status.
//! - [`server`]: `cauce server`, a broker.
//! - [`admin`]: the connection the admin commands share (`cauce-client`, timeouts, error
//!   wording).
//! - [`topic`]: `cauce topic ...`; [`cluster`]: `cauce cluster ...`; [`group`]: `cauce group ...`;
//!   [`txn`]: `cauce txn ...`.
//! - [`produce`]: `cauce produce`; [`consume`]: `cauce consume`, records from lines and to lines.
//! - [`perf`]: `cauce perf ...`, throughput and latency load generators (`perf/produce.rs`,
//!   `perf/consume.rs`, `perf/end_to_end.rs`).
//! - [`output`]: aligned tables and JSON.
//!
//! The admin commands speak the Kafka protocol through `cauce-client`; produce, consume and perf
//! go through librdkafka. Both speak the Kafka protocol only, so they work against any Kafka-compatible
//! broker. Every failure of theirs ends the process with a non-zero status and one line on stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod cluster;
mod consume;
mod group;
mod output;
mod perf;
mod produce;
mod server;
mod topic;
mod txn;

#[derive(Parser)]
#[command(
    name = "cauce",
    version,
    about = "An event streaming platform that speaks Kafka's protocol"
)]
struct Cli {
    #[command(flatten)]
    connection: admin::ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (a single node that is its own controller).
    Server(server::ServerArgs),
    /// Create, list, describe, reconfigure and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Inspect the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Send lines of stdin (or a file) as records, one per line.
    Produce(produce::ProduceArgs),
    /// Print records, one per line; stops at the end of the topic unless --count says otherwise.
    Consume(consume::ConsumeArgs),
    /// List, describe, delete consumer groups and reset their offsets.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// List, describe and abort transactions.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// Measure throughput and latency: produce, consume, or end to end.
    #[command(subcommand)]
    Perf(perf::PerfCommand),
}

/// Exit status of a command-line usage error, as clap uses.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let outcome = match cli.command {
        Command::Server(args) => {
            // The server keeps the report std gives a `main` returning an error.
            if let Err(error) = server::run(args) {
                eprintln!("Error: {error:?}");
                return ExitCode::FAILURE;
            }
            return ExitCode::SUCCESS;
        }
        Command::Topic(command) => topic::run(&cli.connection, command),
        Command::Cluster(command) => cluster::run(&cli.connection, command),
        Command::Produce(args) => produce::run(&cli.connection, args),
        Command::Consume(args) => consume::run(&cli.connection, args),
        Command::Group(command) => group::run(&cli.connection, command),
        Command::Txn(command) => txn::run(&cli.connection, command),
        Command::Perf(command) => perf::run(&cli.connection, command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as usual; a real usage error becomes one line on stderr, so
/// scripts can show it as is.
fn usage_error(error: clap::Error) -> ExitCode {
    if !error.use_stderr() {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let rendered = error.to_string();
    let reason: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:"))
        .take_while(|line| !line.starts_with("For more information"))
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect();
    let reason = reason.join(" ");
    let reason = reason.strip_prefix("error: ").unwrap_or(&reason);
    eprintln!("error: {reason} (see 'cauce --help')");
    ExitCode::from(USAGE_ERROR)
}

/// Folds a message that may carry line breaks (a broker's text, a chain of causes) into one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
