//! Tests of parsing, of the key tables and of the shipped `config/cauce.toml`.

use super::keys::DEFAULT_LOGGING_LEVEL;
use super::*;

#[test]
fn dotted_kafka_keys_parse_with_or_without_quotes() {
    let config = BrokerConfig::from_toml(
        "node.id = 3\nlisteners = \"PLAINTEXT://127.0.0.1:9999\"\n\"log.retention.ms\" = 5\nlog.segment.bytes = 1048576\nauto.create.topics.enable = false\n",
    )
    .unwrap();
    assert_eq!(config.node_id, 3);
    assert_eq!(config.listen.port(), 9999);
    assert!(!config.auto_create_topics);
    assert_eq!(config.topic_defaults.get("log.retention.ms").unwrap(), "5");
    assert_eq!(
        config.topic_defaults.get("log.segment.bytes").unwrap(),
        "1048576"
    );
}

#[test]
fn logging_level_takes_levels_and_per_module_filters() {
    let config =
        BrokerConfig::from_toml("logging.level = \"info,cauce_broker::group=debug\"").unwrap();
    assert_eq!(config.logging_level, "info,cauce_broker::group=debug");
    assert!(BrokerConfig::from_toml("logging.level = \"loud\"").is_err());
    assert_eq!(BrokerConfig::default().logging_level, DEFAULT_LOGGING_LEVEL);
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    let unknown = BrokerConfig::from_toml("no.such.key = 1")
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("unknown config key 'no.such.key'"),
        "{unknown}"
    );
    assert!(BrokerConfig::from_toml("num.partitions = 0").is_err());
    assert!(BrokerConfig::from_toml("log.retention.ms = \"soon\"").is_err());
}

#[test]
fn connection_limits_parse_with_their_overrides() {
    let config = BrokerConfig::from_toml(
        "\"max.connections\" = 10\n\"max.connections.per.ip\" = 3\n\
         \"max.connections.per.ip.overrides\" = \"127.0.0.1:5, [::1]:7\"\n",
    )
    .unwrap();
    assert_eq!(
        (config.max_connections, config.max_connections_per_ip),
        (10, 3)
    );
    let overrides: Vec<String> = config
        .max_connections_per_ip_overrides
        .iter()
        .map(|(address, count)| format!("{address}={count}"))
        .collect();
    assert_eq!(overrides, ["127.0.0.1=5", "::1=7"]);
    assert!(BrokerConfig::from_toml("\"max.connections.per.ip.overrides\" = \"host\"").is_err());
    assert_eq!(
        BrokerConfig::from_toml("queued.max.request.bytes = -1")
            .unwrap()
            .queued_max_request_bytes,
        usize::MAX
    );
}

#[test]
fn the_shipped_default_config_parses_and_lists_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cauce.toml");
    BrokerConfig::from_file(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut keys: Vec<&str> = TOPIC_CONFIGS.iter().map(|def| def.broker_synonym).collect();
    keys.extend(BROKER_KEYS.iter().map(|def| def.name));
    for key in keys {
        // Keys that prefix others are listed quoted (see max.connections).
        assert!(
            text.contains(&format!("# {key} = ")) || text.contains(&format!("# \"{key}\" = ")),
            "config/cauce.toml does not list '{key}'"
        );
    }
}

#[test]
fn metrics_listener_is_off_unless_an_address_is_given() {
    assert_eq!(BrokerConfig::default().metrics_listen, None);
    let config = BrokerConfig::from_toml("metrics.listen = \"127.0.0.1:9644\"").unwrap();
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9644".parse().unwrap())
    );
    assert_eq!(
        config.broker_key_value("metrics.listen").unwrap(),
        "127.0.0.1:9644"
    );
    let off = BrokerConfig::from_toml("metrics.listen = \"\"").unwrap();
    assert_eq!(off.metrics_listen, None);
    assert!(BrokerConfig::from_toml("metrics.listen = \"nowhere\"").is_err());
}

#[test]
fn kraft_style_listeners_and_voters_parse() {
    let config = BrokerConfig::from_toml(
        "node.id = 2\nlisteners = \"PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193\"\n\
         controller.quorum.voters = \"1@127.0.0.1:9093, 2@127.0.0.1:9193,3@localhost:9293\"\n",
    )
    .unwrap();
    assert_eq!(config.listen, "127.0.0.1:9192".parse().unwrap());
    assert_eq!(
        config.controller_listen,
        Some("127.0.0.1:9193".parse().unwrap())
    );
    assert!(config.is_clustered());
    assert_eq!(
        config.quorum_voters.get(&3).map(String::as_str),
        Some("localhost:9293")
    );
    assert_eq!(
        config.broker_key_value("controller.quorum.voters").unwrap(),
        "1@127.0.0.1:9093,2@127.0.0.1:9193,3@localhost:9293"
    );
    assert!(!BrokerConfig::default().is_clustered());
    for bad in [
        "1@nowhere",
        "x@127.0.0.1:1",
        "1@127.0.0.1:1,1@127.0.0.1:2",
        "1-127.0.0.1:1",
    ] {
        assert!(
            BrokerConfig::from_toml(&format!("controller.quorum.voters = \"{bad}\"")).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn every_broker_key_has_a_value_to_describe() {
    let config = BrokerConfig::default();
    for def in BROKER_KEYS {
        assert!(
            config.broker_key_value(def.name).is_some(),
            "{} has no value",
            def.name
        );
    }
}

#[test]
fn every_key_parses_its_own_default_and_shows_it_back() {
    for def in BROKER_KEYS {
        let default = def.default_text();
        let mut config = BrokerConfig::default();
        config
            .set(def.name, &default)
            .unwrap_or_else(|error| panic!("{} refuses its default: {error}", def.name));
        assert_eq!((def.show)(&config), default, "{}", def.name);
    }
    for def in TOPIC_CONFIGS {
        let mut config = BrokerConfig::default();
        config.set(def.broker_synonym, def.default).unwrap();
        assert_eq!(config.topic_defaults[def.broker_synonym], def.default);
    }
}

#[test]
fn every_key_is_named_once_and_documented() {
    let mut names: Vec<&str> = BROKER_KEYS
        .iter()
        .flat_map(|def| std::iter::once(def.name).chain(def.aliases.iter().copied()))
        .chain(TOPIC_CONFIGS.iter().map(|def| def.broker_synonym))
        .chain(TOPIC_DEFAULT_UNIT_KEYS.iter().map(|def| def.name))
        .collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "a key name is defined twice");
    for def in BROKER_KEYS {
        assert!(def.doc_lines().next().is_some(), "{} has no doc", def.name);
    }
}

#[test]
fn unknown_key_error_names_the_key() {
    let mut config = BrokerConfig::default();
    let error = config.set("log.retention.weeks", "1").unwrap_err();
    assert_eq!(
        error.to_string(),
        "configuration: unknown config key 'log.retention.weeks'"
    );
}

#[test]
fn invalid_values_are_refused_with_what_was_expected() {
    let cases = [
        ("node.id", "one", "an integer"),
        ("num.partitions", "0", "an integer of at least 1"),
        ("num.partitions", "-3", "an integer of at least 1"),
        (
            "default.replication.factor",
            "40000",
            "an integer of at least 1",
        ),
        (
            "socket.request.max.bytes",
            "1023",
            "an integer of at least 1024",
        ),
        (
            "queued.max.request.bytes",
            "-2",
            "-1 or an integer of at least 1024",
        ),
        ("connections.max.idle.ms", "0", "an integer of at least 1"),
        ("offset.metadata.max.bytes", "-1", "a non-negative integer"),
        ("auto.create.topics.enable", "yes", "true or false"),
        ("log.cleaner.enable", "1", "true or false"),
        ("broker.heartbeat.interval.ms", "-5", "milliseconds"),
        ("replica.fetch.max.bytes", "0", "a positive number of bytes"),
        (
            "leader.imbalance.check.interval.seconds",
            "0",
            "a number of seconds of at least 1",
        ),
        (
            "replica.high.watermark.checkpoint.interval.ms",
            "0",
            "milliseconds, at least 1",
        ),
        ("listeners", "PLAINTEXT://nowhere", "[NAME://]HOST:PORT,..."),
        ("advertised.listeners", "nowhere", "HOST:PORT"),
        ("controller.quorum.voters", "1@nowhere", "ID@HOST:PORT,..."),
        (
            "max.connections.per.ip.overrides",
            "host",
            "address:count,...",
        ),
        ("metrics.listen", "nowhere", "HOST:PORT or an empty string"),
        (
            "logging.level",
            "loud",
            "a log filter such as info, debug or cauce_broker=debug",
        ),
        ("log.retention.hours", "a day", "an integer"),
    ];
    for (key, value, expected) in cases {
        let error = BrokerConfig::default().set(key, value).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("configuration: invalid value '{value}' for '{key}': expected {expected}"),
        );
    }
    let topic_error = BrokerConfig::default()
        .set("log.retention.ms", "-2")
        .unwrap_err();
    assert_eq!(
        topic_error.to_string(),
        "configuration: invalid value '-2' for config 'retention.ms': expected a value of at least -1"
    );
}

#[test]
fn log_retention_in_hours_or_minutes_gives_way_to_milliseconds() {
    let config = BrokerConfig::from_toml("log.retention.hours = 2").unwrap();
    assert_eq!(config.topic_defaults["log.retention.ms"], "7200000");
    let config =
        BrokerConfig::from_toml("log.retention.minutes = 1\nlog.retention.ms = 5").unwrap();
    assert_eq!(config.topic_defaults["log.retention.ms"], "5");
    let config = BrokerConfig::from_toml("log.dir = \"/tmp/elsewhere\"").unwrap();
    assert_eq!(config.data_dir, std::path::PathBuf::from("/tmp/elsewhere"));
}

/// Regenerate with `CAUCE_WRITE_DEFAULT_CONFIG=1 cargo test -p cauce-broker shipped_config_file`.
#[test]
fn the_shipped_config_file_is_generated_from_the_key_tables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(default_file::DEFAULT_FILE_PATH);
    let generated = default_file::default_config_file();
    if std::env::var_os("CAUCE_WRITE_DEFAULT_CONFIG").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let shipped = std::fs::read_to_string(&path).unwrap();
    if shipped != generated {
        let line = shipped
            .lines()
            .zip(generated.lines())
            .position(|(shipped, generated)| shipped != generated)
            .unwrap_or_else(|| shipped.lines().count().min(generated.lines().count()));
        panic!(
            "config/cauce.toml is not the text generated from the key tables (first difference \
             at line {}: shipped {:?}, generated {:?}); regenerate it with \
             CAUCE_WRITE_DEFAULT_CONFIG=1 cargo test -p cauce-broker shipped_config_file",
            line + 1,
            shipped.lines().nth(line).unwrap_or(""),
            generated.lines().nth(line).unwrap_or(""),
        );
    }
}

/// Every `# key = value` line of the shipped file, uncommented, is valid TOML (the quoting of
/// keys that prefix others included) and gives the defaults back.
#[test]
fn uncommenting_every_key_of_the_shipped_file_changes_nothing() {
    let text = default_file::default_config_file();
    let uncommented: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| {
            let Some((key, _)) = line.split_once(" = ") else {
                return false;
            };
            let key = key.trim_matches('"');
            broker_key_def(key).is_some()
                || TOPIC_CONFIGS.iter().any(|def| def.broker_synonym == key)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let config = BrokerConfig::from_toml(&uncommented).unwrap();
    let defaults = BrokerConfig::default();
    for def in BROKER_KEYS {
        assert_eq!((def.show)(&config), (def.show)(&defaults), "{}", def.name);
    }
    assert_eq!(config.topic_defaults.len(), TOPIC_CONFIGS.len());
    for def in TOPIC_CONFIGS {
        assert_eq!(config.topic_defaults[def.broker_synonym], def.default);
    }
}
