//! How values of broker keys are parsed from text and shown as text. Each parser returns what
//! was expected when it refuses a value; [`BrokerConfig::set`](super::BrokerConfig::set) turns
//! that into the error message.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use super::BrokerConfig;

/// What a parser says when it refuses a value.
pub type Expected = &'static str;

/// Any value of the type; `expected` describes it.
pub fn parsed<T: FromStr>(expected: Expected) -> impl Fn(&str) -> Result<T, Expected> {
    move |value| value.parse().map_err(|_| expected)
}

/// A number of at least `min`; `expected` describes it.
pub fn at_least<T: FromStr + PartialOrd>(
    min: T,
    expected: Expected,
) -> impl Fn(&str) -> Result<T, Expected> {
    move |value| {
        value
            .parse::<T>()
            .ok()
            .filter(|parsed| *parsed >= min)
            .ok_or(expected)
    }
}

/// Any text, without surrounding spaces.
pub fn trimmed_text(value: &str) -> Result<String, Expected> {
    Ok(value.trim().to_string())
}

/// A path.
pub fn path(value: &str) -> Result<PathBuf, Expected> {
    Ok(PathBuf::from(value))
}

/// `queued.max.request.bytes`: Kafka's -1 (no limit) is accepted; the pool is then as large as
/// it can be.
pub fn request_pool_bytes(value: &str) -> Result<usize, Expected> {
    const EXPECTED: Expected = "-1 or an integer of at least 1024";
    match value.trim() {
        "-1" => Ok(usize::MAX),
        other => at_least(1024, EXPECTED)(other),
    }
}

/// `advertised.listeners`: `[NAME://]HOST:PORT`, the first of a list.
pub fn advertised_listener(value: &str) -> Result<Option<(String, u16)>, Expected> {
    let address = strip_listener_name(value);
    let (host, port) = address.rsplit_once(':').ok_or("HOST:PORT")?;
    Ok(Some((
        host.to_string(),
        port.parse().map_err(|_| "HOST:PORT")?,
    )))
}

/// Shows `advertised.listeners`: the advertised address, or the listener's when none is set.
pub fn show_advertised_listener(config: &BrokerConfig) -> String {
    let (host, port) = config.advertised_address();
    format!("PLAINTEXT://{host}:{port}")
}

/// Sets `listeners`: the entry named by `controller.listener.names` is the controller
/// listener, the first other one the Kafka listener. A later `controller.listener.names` does
/// not re-split an earlier `listeners`; set the name first, or use the default.
pub fn set_listeners(config: &mut BrokerConfig, value: &str) -> Result<(), Expected> {
    const EXPECTED: Expected = "[NAME://]HOST:PORT,...";
    let mut kafka = None;
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let name = entry.split_once("://").map(|(name, _)| name);
        let address = parse_listener(entry).map_err(|_| EXPECTED)?;
        if name == Some(config.controller_listener_name.as_str()) {
            config.controller_listen = Some(address);
        } else if kafka.is_none() {
            kafka = Some(address);
        }
    }
    if let Some(address) = kafka {
        config.listen = address;
    }
    Ok(())
}

/// Shows `listeners`: the Kafka listener, then the controller listener if there is one.
pub fn show_listeners(config: &BrokerConfig) -> String {
    match config.controller_listen {
        Some(controller) => format!(
            "PLAINTEXT://{},{}://{controller}",
            config.listen, config.controller_listener_name
        ),
        None => format!("PLAINTEXT://{}", config.listen),
    }
}

/// `metrics.listen`: `HOST:PORT`, or empty for no metrics listener.
pub fn optional_listener(value: &str) -> Result<Option<SocketAddr>, Expected> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    parse_listener(value)
        .map(Some)
        .map_err(|_| "HOST:PORT or an empty string")
}

/// Shows an optional address, empty for none.
pub fn show_optional_address(address: Option<SocketAddr>) -> String {
    address.map_or_else(String::new, |address| address.to_string())
}

/// `logging.level`: `level` or `target=level` items separated by commas.
pub fn log_filter(value: &str) -> Result<String, Expected> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let valid = !value.trim().is_empty()
        && value.split(',').all(|item| {
            let level = item
                .rsplit_once('=')
                .map_or(item, |(_, level)| level)
                .trim();
            LEVELS.contains(&level.to_ascii_lowercase().as_str())
        });
    if !valid {
        return Err("a log filter such as info, debug or cauce_broker=debug");
    }
    Ok(value.to_string())
}

/// `controller.quorum.voters`: `ID@HOST:PORT` entries separated by commas.
pub fn quorum_voters(value: &str) -> Result<BTreeMap<i32, String>, Expected> {
    const EXPECTED: Expected = "ID@HOST:PORT,...";
    let mut voters = BTreeMap::new();
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (id, address) = entry.split_once('@').ok_or(EXPECTED)?;
        let id: i32 = id.trim().parse().map_err(|_| EXPECTED)?;
        let (host, port) = address.trim().rsplit_once(':').ok_or(EXPECTED)?;
        if host.is_empty() || port.parse::<u16>().is_err() || voters.contains_key(&id) {
            return Err(EXPECTED);
        }
        voters.insert(id, address.trim().to_string());
    }
    Ok(voters)
}

/// Shows `controller.quorum.voters` as it is written.
pub fn show_quorum_voters(voters: &BTreeMap<i32, String>) -> String {
    voters
        .iter()
        .map(|(id, address)| format!("{id}@{address}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `max.connections.per.ip.overrides`: `address:count` pairs separated by commas (IPv6
/// addresses as `[::1]:5`); empty for none.
pub fn connection_overrides(value: &str) -> Result<BTreeMap<IpAddr, usize>, Expected> {
    const EXPECTED: Expected = "address:count,...";
    let mut overrides = BTreeMap::new();
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (address, count) = entry.rsplit_once(':').ok_or(EXPECTED)?;
        let address = address.trim_start_matches('[').trim_end_matches(']');
        overrides.insert(
            address.parse().map_err(|_| EXPECTED)?,
            count.parse().map_err(|_| EXPECTED)?,
        );
    }
    Ok(overrides)
}

/// Shows `max.connections.per.ip.overrides` as `address:count,...`.
pub fn show_connection_overrides(overrides: &BTreeMap<IpAddr, usize>) -> String {
    overrides
        .iter()
        .map(|(address, count)| format!("{address}:{count}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses one listener address, `[NAME://]HOST:PORT`, with `localhost` as 127.0.0.1.
pub fn parse_listener(value: &str) -> Result<SocketAddr, std::net::AddrParseError> {
    let address = strip_listener_name(value);
    let address = address
        .strip_prefix("localhost:")
        .map_or(address.to_string(), |port| format!("127.0.0.1:{port}"));
    address.parse()
}

/// The address of the first entry of a listener list, without its `NAME://`.
fn strip_listener_name(value: &str) -> &str {
    let first = value.split(',').next().unwrap_or(value).trim();
    first
        .split_once("://")
        .map_or(first, |(_, address)| address)
}
