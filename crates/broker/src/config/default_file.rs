//! The text of `config/cauce.toml`, generated from the key tables: every broker key of
//! [`BROKER_KEYS`] and the broker-level default of every topic key of [`TOPIC_CONFIGS`], each
//! with its documentation and its default, commented out.

use cauce_metadata::topic_config::{ConfigKind, TopicConfigDef, TOPIC_CONFIGS};

use super::{BrokerConfig, BROKER_KEYS, TOPIC_DEFAULT_UNIT_KEYS};

/// Where the shipped file lives, from the workspace root.
pub const DEFAULT_FILE_PATH: &str = "config/cauce.toml";

/// Columns of a comment line in the generated file: documentation is wrapped to fit.
const LINE_WIDTH: usize = 95;

/// Columns of a section heading.
const HEADING_WIDTH: usize = 89;

/// The file's opening comment.
const HEADER: &str = "\
# Cauce broker configuration.
#
# Keys use Kafka's names wherever the meaning is Kafka's; a dotted key such as
# `log.retention.ms = 1` may be written bare or quoted. Every key is listed here with its
# default; uncomment to change. Command-line flags (--data-dir, --listen,
# --advertised-listener) override this file.
#
# Keys that are a prefix of another key are written quoted: unquoted, TOML reads
# `max.connections = 1` as a value where the longer keys need a table.
#
# This file is generated from the key tables (crates/broker/src/config/keys.rs and
# crates/metadata/src/topic_config.rs); after changing them, regenerate it with
# CAUCE_WRITE_DEFAULT_CONFIG=1 cargo test -p cauce-broker shipped_config_file
";

/// The heading of the topic defaults.
const TOPIC_DEFAULTS_SECTION: &str =
    "Defaults for topic configs (each topic can override the key in brackets)";

/// The whole text of `config/cauce.toml`.
pub fn default_config_file() -> String {
    let mut out = String::from(HEADER);
    let all_keys: Vec<&str> = BROKER_KEYS
        .iter()
        .map(|def| def.name)
        .chain(TOPIC_CONFIGS.iter().map(|def| def.broker_synonym))
        .collect();
    let defaults = BrokerConfig::default();
    let mut section = "";
    for def in BROKER_KEYS {
        if def.section != section {
            section = def.section;
            push_section(&mut out, section);
        }
        out.push('\n');
        for line in wrap(&def.doc_paragraph(), LINE_WIDTH - 2) {
            push_comment(&mut out, &line);
        }
        let value = (def.show)(&defaults);
        push_key(&mut out, &all_keys, def.name, def.kind, &value);
    }
    push_section(&mut out, TOPIC_DEFAULTS_SECTION);
    for def in TOPIC_CONFIGS {
        push_topic_default(&mut out, &all_keys, def);
    }
    out
}

/// Appends `# ---- title ----...` after a blank line.
fn push_section(out: &mut String, title: &str) {
    let heading = format!("# ---- {title} ");
    let dashes = HEADING_WIDTH.saturating_sub(heading.len()).max(4);
    out.push('\n');
    out.push_str(&heading);
    out.push_str(&"-".repeat(dashes));
    out.push('\n');
}

/// Appends one comment line.
fn push_comment(out: &mut String, line: &str) {
    out.push_str("# ");
    out.push_str(line);
    out.push('\n');
}

/// Appends `# key = value`, the key quoted when it is a prefix of another key or another key
/// is a prefix of it, the value quoted for text types.
fn push_key(out: &mut String, all_keys: &[&str], name: &str, kind: ConfigKind, value: &str) {
    let nests = |shorter: &str, longer: &str| {
        longer
            .strip_prefix(shorter)
            .is_some_and(|rest| rest.starts_with('.'))
    };
    let quoted_key = all_keys
        .iter()
        .any(|other| nests(name, other) || nests(other, name));
    let key = if quoted_key {
        toml_string(name)
    } else {
        name.to_string()
    };
    let value = match kind {
        ConfigKind::String | ConfigKind::List => toml_string(value),
        ConfigKind::Boolean | ConfigKind::Int | ConfigKind::Long | ConfigKind::Double => {
            value.to_string()
        }
    };
    out.push_str(&format!("# {key} = {value}\n"));
}

/// Appends a topic key's broker-level default: `# [topic.name] documentation`, then the key.
fn push_topic_default(out: &mut String, all_keys: &[&str], def: &TopicConfigDef) {
    out.push('\n');
    for line in wrap(&format!("[{}] {}", def.name, def.doc), LINE_WIDTH - 2) {
        push_comment(out, &line);
    }
    push_key(out, all_keys, def.broker_synonym, def.kind, def.default);
    let unit_keys: Vec<&str> = TOPIC_DEFAULT_UNIT_KEYS
        .iter()
        .filter(|unit_key| unit_key.target == def.broker_synonym)
        .map(|unit_key| unit_key.name)
        .collect();
    if !unit_keys.is_empty() {
        let note = format!(
            "{} {} accepted too; {} wins.",
            unit_keys.join(" and "),
            if unit_keys.len() == 1 { "is" } else { "are" },
            def.broker_synonym
        );
        push_comment(out, &note);
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Breaks text into lines of at most `width` columns, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
