//! The `broker_config!` macro: from one entry per key it writes the struct field, its default,
//! and the key's row in [`BROKER_KEYS`](super::BROKER_KEYS) (name, type, documentation, how a
//! value is parsed and validated, how the current value is shown).

use cauce_metadata::topic_config::ConfigKind;

use super::BrokerConfig;

/// Parses and validates a value and stores it; the error says what was expected.
pub type SetKey = fn(&mut BrokerConfig, &str) -> Result<(), &'static str>;

/// The current value of a key as text, as DescribeConfigs reports it and `set` takes it back.
pub type ShowKey = fn(&BrokerConfig) -> String;

/// One broker-level key, written by one entry of `broker_config!`.
#[derive(Debug, Clone, Copy)]
pub struct BrokerKeyDef {
    /// Kafka's name for the key.
    pub name: &'static str,
    /// Other names accepted for it (Kafka's `log.dir` for `log.dirs`).
    pub aliases: &'static [&'static str],
    /// The value type DescribeConfigs reports; it also decides quoting in `config/cauce.toml`.
    pub kind: ConfigKind,
    /// The heading of `config/cauce.toml` the key is listed under (read by the generator of
    /// that file, which only the test of the shipped file runs).
    #[cfg_attr(not(test), allow(dead_code))]
    pub section: &'static str,
    /// The one documentation of the key, as lines: the field's doc comment, the comment in
    /// `config/cauce.toml` and DescribeConfigs' documentation all come from it.
    pub doc: &'static str,
    /// Parses, validates and stores a value.
    pub set: SetKey,
    /// Shows the current value.
    pub show: ShowKey,
}

impl BrokerKeyDef {
    /// The documentation's lines, without the space `///` leaves in front of them.
    pub fn doc_lines(&self) -> impl Iterator<Item = &'static str> {
        self.doc
            .lines()
            .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
    }

    /// The documentation as one paragraph, for DescribeConfigs.
    pub fn doc_paragraph(&self) -> String {
        self.doc_lines().collect::<Vec<_>>().join(" ")
    }

    /// The default value as text: what [`BrokerConfig::default`] shows for the key.
    #[cfg(test)]
    pub fn default_text(&self) -> String {
        (self.show)(&BrokerConfig::default())
    }

    /// Whether `key` names this key, by its name or an alias.
    pub fn is_named(&self, key: &str) -> bool {
        self.name == key || self.aliases.contains(&key)
    }
}

/// Writes the setter of one entry: `parse` gives a function from text to the field's value,
/// `set` a whole [`SetKey`] for keys that touch more than their field.
macro_rules! key_setter {
    ($field:ident, parse $parse:expr) => {
        |config: &mut BrokerConfig, value: &str| -> Result<(), &'static str> {
            config.$field = ($parse)(value)?;
            Ok(())
        }
    };
    ($field:ident, set $set:expr) => {
        $set
    };
}

/// Writes the shower of one entry: the field's `Display` unless the entry gives a [`ShowKey`].
macro_rules! key_shower {
    ($field:ident) => {
        |config: &BrokerConfig| config.$field.to_string()
    };
    ($field:ident, $show:expr) => {
        $show
    };
}

/// Defines [`BrokerConfig`], its `Default` and [`BROKER_KEYS`](super::BROKER_KEYS).
///
/// Each entry, under a `section "title" { ... }` of `config/cauce.toml`:
///
/// ```text
/// /// Documentation, as it should read in config/cauce.toml.
/// field_name: Type = default_expression, key "kafka.name" [or "alias"], kind Int,
///     parse function_from_text_to_value | set function(&mut BrokerConfig, &str)
///     [, show function(&BrokerConfig) -> String];
/// ```
///
/// `derived { ... }` lists fields that no key names directly (they are filled by another key's
/// `set`), with their documentation and default.
macro_rules! broker_config {
    (
        $(
            section $section:literal {
                $(
                    $(#[doc = $doc:literal])*
                    $field:ident: $type:ty = $default:expr,
                    key $key:literal $(or $alias:literal)*, kind $kind:ident
                    $(, parse $parse:expr)? $(, set $set:expr)? $(, show $show:expr)?;
                )*
            }
        )*
        derived {
            $(
                $(#[doc = $derived_doc:literal])*
                $derived_field:ident: $derived_type:ty = $derived_default:expr;
            )*
        }
    ) => {
        /// Everything the broker reads from its configuration.
        #[derive(Debug, Clone)]
        pub struct BrokerConfig {
            $($(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("Key `", $key, "`.")]
                pub $field: $type,
            )*)*
            $(
                $(#[doc = $derived_doc])*
                pub $derived_field: $derived_type,
            )*
        }

        impl Default for BrokerConfig {
            fn default() -> Self {
                BrokerConfig {
                    $($($field: $default,)*)*
                    $($derived_field: $derived_default,)*
                }
            }
        }

        /// Every broker-level key [`BrokerConfig::set`] takes besides the topic defaults, in the
        /// order of `config/cauce.toml`.
        pub const BROKER_KEYS: &[BrokerKeyDef] = &[
            $($(
                BrokerKeyDef {
                    name: $key,
                    aliases: &[$($alias),*],
                    kind: ::cauce_metadata::topic_config::ConfigKind::$kind,
                    section: $section,
                    doc: concat!($($doc, "\n"),*),
                    set: key_setter!($field $(, parse $parse)? $(, set $set)?),
                    show: key_shower!($field $(, $show)?),
                },
            )*)*
        ];
    };
}

pub(super) use {broker_config, key_setter, key_shower};
