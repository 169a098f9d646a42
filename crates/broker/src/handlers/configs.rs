//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and brokers.

use std::collections::BTreeMap;

use cauce_metadata::topic_config::{
    effective_topic_configs, topic_config_def, ConfigKind, ConfigSource, TOPIC_CONFIGS,
};
use cauce_metadata::{ConfigResource, MetadataError, MetadataImage};
use cauce_protocol::kafka::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use cauce_protocol::kafka::messages::{
    alter_configs_response, incremental_alter_configs_request, incremental_alter_configs_response,
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use cauce_protocol::kafka::protocol::StrBytes;
use cauce_protocol::ResponseError;

use super::{text, Context, Reply};
use crate::config::BROKER_KEYS;
use crate::errors::metadata_error_code;

/// Resource types of the config APIs.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// One described key before it is encoded.
struct Described {
    /// Key name.
    name: String,
    /// Effective value.
    value: String,
    /// Where the value comes from.
    source: i8,
    /// Value type code.
    kind: i8,
    /// Whether it can be altered at run time.
    read_only: bool,
    /// Other sources of the same setting, most specific first.
    synonyms: Vec<(String, String, i8)>,
    /// The key's documentation, from its table.
    doc: String,
}

pub fn describe_configs(context: Context, request: DescribeConfigsRequest) -> Reply {
    let image = context.broker.metadata.image();
    let defaults = context.broker.replicas.topic_defaults();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let described = match resource.resource_type {
                TOPIC => match image.topic(&resource.resource_name) {
                    Some(topic) => Ok(describe_topic(&topic.configs, defaults)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic '{}' does not exist", resource.resource_name.as_str()),
                    )),
                },
                BROKER => match check_broker_name(&context, resource.resource_name.as_str()) {
                    Ok(()) => Ok(describe_broker(&context)),
                    Err(message) => Err((ResponseError::InvalidRequest, message)),
                },
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                )),
            };
            let described = match described {
                Ok(described) => described,
                Err((error, message)) => {
                    return result
                        .with_error_code(error.code())
                        .with_error_message(Some(text(message)))
                }
            };
            // Kafka treats an empty key list like a null one: describe everything.
            let keys = resource.configuration_keys.as_ref();
            let configs = described
                .into_iter()
                .filter(|entry| {
                    keys.is_none_or(|keys| {
                        keys.is_empty() || keys.iter().any(|key| key.as_str() == entry.name)
                    })
                })
                .map(|entry| {
                    let synonyms = if request.include_synonyms {
                        entry
                            .synonyms
                            .iter()
                            .map(|(name, value, source)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(text(name.clone()))
                                    .with_value(Some(text(value.clone())))
                                    .with_source(*source)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    DescribeConfigsResourceResult::default()
                        .with_name(text(entry.name))
                        .with_value(Some(text(entry.value)))
                        .with_read_only(entry.read_only)
                        .with_config_source(entry.source)
                        .with_config_type(entry.kind)
                        .with_synonyms(synonyms)
                        .with_documentation(request.include_documentation.then(|| text(entry.doc)))
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    context.respond(&DescribeConfigsResponse::default().with_results(results))
}

fn describe_topic(
    overrides: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
) -> Vec<Described> {
    effective_topic_configs(overrides, defaults)
        .into_iter()
        .map(|(def, value, source)| {
            let mut synonyms = Vec::new();
            if let Some(value) = overrides.get(def.name) {
                synonyms.push((
                    def.name.to_string(),
                    value.clone(),
                    ConfigSource::Topic.describe_configs_code(),
                ));
            }
            if let Some(value) = defaults.get(def.broker_synonym) {
                synonyms.push((
                    def.broker_synonym.to_string(),
                    value.clone(),
                    ConfigSource::StaticBroker.describe_configs_code(),
                ));
            }
            synonyms.push((
                def.broker_synonym.to_string(),
                def.default.to_string(),
                ConfigSource::Default.describe_configs_code(),
            ));
            Described {
                name: def.name.to_string(),
                value,
                source: source.describe_configs_code(),
                kind: def.kind.describe_configs_code(),
                read_only: false,
                synonyms,
                doc: def.doc.to_string(),
            }
        })
        .collect()
}

fn describe_broker(context: &Context) -> Vec<Described> {
    let config = &context.broker.config;
    let static_code = ConfigSource::StaticBroker.describe_configs_code();
    let mut described: Vec<Described> = BROKER_KEYS
        .iter()
        .map(|def| {
            let value = (def.show)(config);
            Described {
                name: def.name.to_string(),
                value: value.clone(),
                source: static_code,
                kind: def.kind.describe_configs_code(),
                read_only: true,
                synonyms: vec![(def.name.to_string(), value, static_code)],
                doc: def.doc_paragraph(),
            }
        })
        .collect();
    // No broker key shares a name with a topic key's broker-level default (a config test
    // checks every name is defined once), so the two lists are simply joined.
    let defaults = context.broker.replicas.topic_defaults();
    for def in TOPIC_CONFIGS {
        let (value, source) = match defaults.get(def.broker_synonym) {
            Some(value) => (value.clone(), static_code),
            None => (
                def.default.to_string(),
                ConfigSource::Default.describe_configs_code(),
            ),
        };
        described.push(Described {
            name: def.broker_synonym.to_string(),
            value: value.clone(),
            source,
            kind: def.kind.describe_configs_code(),
            read_only: true,
            synonyms: vec![(def.broker_synonym.to_string(), value, source)],
            doc: def.doc.to_string(),
        });
    }
    described
}

fn check_broker_name(context: &Context, name: &str) -> Result<(), String> {
    if name.is_empty() || name == context.broker.config.node_id.to_string() {
        Ok(())
    } else {
        Err(format!(
            "unexpected broker id '{name}', expected {} or an empty name",
            context.broker.config.node_id
        ))
    }
}

fn resource_for(
    context: &Context,
    resource_type: i8,
    name: &str,
) -> Result<ConfigResource, (ResponseError, String)> {
    match resource_type {
        TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        BROKER => check_broker_name(context, name)
            .map(|()| ConfigResource::Broker(name.to_string()))
            .map_err(|message| (ResponseError::InvalidRequest, message)),
        other => Err((
            ResponseError::InvalidRequest,
            format!("resource type {other} is not supported"),
        )),
    }
}

/// A key set to a value (`Some`) or removed (`None`).
type ConfigChange = (String, Option<String>);

fn error_pair(error: MetadataError) -> (ResponseError, String) {
    (metadata_error_code(&error), error.to_string())
}

pub fn alter_configs(context: Context, request: AlterConfigsRequest) -> Reply {
    context.respond_later(|context| async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in &request.resources {
            let changes: Vec<(String, Option<String>)> = resource
                .configs
                .iter()
                .map(|config| {
                    (
                        config.name.to_string(),
                        config.value.as_ref().map(|value| value.to_string()),
                    )
                })
                .collect();
            let target = resource_for(&context, resource.resource_type, &resource.resource_name);
            let (code, message) =
                alter(&context, target, changes, true, request.validate_only).await;
            responses.push(
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone())
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
        context.broker.logs_caught_up().await;
        AlterConfigsResponse::default().with_responses(responses)
    })
}

pub fn incremental_alter_configs(
    context: Context,
    request: IncrementalAlterConfigsRequest,
) -> Reply {
    context.respond_later(|context| async move {
        let image = context.broker.metadata.image();
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in &request.resources {
            let target = resource_for(&context, resource.resource_type, &resource.resource_name);
            let changes = match &target {
                Ok(target) => incremental_changes(&image, target, resource),
                Err(_) => Ok(Vec::new()),
            };
            let (code, message) = match changes {
                Ok(changes) => alter(&context, target, changes, false, request.validate_only).await,
                Err((error, message)) => (error.code(), Some(text(message))),
            };
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone())
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
        context.broker.logs_caught_up().await;
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    })
}

/// Has the controller change `target`'s keys; the error code and message to answer with.
async fn alter(
    context: &Context,
    target: Result<ConfigResource, (ResponseError, String)>,
    changes: Vec<ConfigChange>,
    replace_all: bool,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    let outcome = match target {
        Ok(target) => context
            .broker
            .metadata
            .alter_configs(target, &changes, replace_all, validate_only)
            .await
            .map_err(error_pair),
        Err(refused) => Err(refused),
    };
    match outcome {
        Ok(()) => (0, None),
        Err((error, message)) => (error.code(), Some(text(message))),
    }
}

/// The changes an IncrementalAlterConfigs resource asks for, as set (`Some`) or removed
/// (`None`) keys: APPEND and SUBTRACT are resolved against the current value.
fn incremental_changes(
    image: &MetadataImage,
    target: &ConfigResource,
    resource: &incremental_alter_configs_request::AlterConfigsResource,
) -> Result<Vec<ConfigChange>, (ResponseError, String)> {
    let current = match target {
        ConfigResource::Topic(name) => image
            .topic(name)
            .map(|topic| topic.configs.clone())
            .unwrap_or_default(),
        ConfigResource::Broker(name) => image.broker_configs.get(name).cloned().unwrap_or_default(),
    };
    let mut changes = Vec::new();
    for config in &resource.configs {
        let name = config.name.to_string();
        let value = config.value.as_ref().map(|value| value.to_string());
        let change = match config.config_operation {
            SET => value,
            DELETE => None,
            APPEND | SUBTRACT => Some(edit_list(
                &name,
                current.get(&name),
                value.as_deref(),
                config.config_operation == APPEND,
            )?),
            other => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("config operation {other} is unknown"),
                ))
            }
        };
        changes.push((name, change));
    }
    Ok(changes)
}

/// APPEND and SUBTRACT apply to list-typed keys only.
fn edit_list(
    name: &str,
    current: Option<&String>,
    value: Option<&str>,
    append: bool,
) -> Result<String, (ResponseError, String)> {
    let Some(def) = topic_config_def(name).filter(|def| def.kind == ConfigKind::List) else {
        return Err((
            ResponseError::InvalidConfig,
            format!("config '{name}' is not a list; APPEND and SUBTRACT need a list"),
        ));
    };
    let base = current.cloned().unwrap_or_else(|| def.default.to_string());
    let mut items: Vec<String> = base
        .split(',')
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect();
    for item in value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        if append {
            if !items.iter().any(|existing| existing == item) {
                items.push(item.to_string());
            }
        } else {
            items.retain(|existing| existing != item);
        }
    }
    Ok(items.join(","))
}
