//! CreateTopics, DescribeConfigs and IncrementalAlterConfigs for one topic, and
//! ListConsumerGroupOffsets and DeleteGroups for one group, through librdkafka's C API.
//!
//! rdkafka 0.39 wraps DescribeConfigs and AlterConfigs but drops each resource's error code and
//! message, so an unknown topic or a refused value looked like success; it does not wrap
//! IncrementalAlterConfigs, which changes only the keys named; and its CreateTopics keeps a
//! failed topic's code but not the broker's message (which says what value was wrong). This
//! module makes the same calls its futures make, reads the per-resource errors and messages, and
//! waits on a queue of its own. rdkafka wraps neither group call.

use std::ffi::{c_char, CStr, CString};

use anyhow::{anyhow, Context};
use rdkafka::bindings as rd;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::admin::{topic_error, Connection, REQUEST_TIMEOUT};

/// One configuration key of a topic as the broker describes it.
pub struct ConfigEntry {
    pub name: String,
    /// None for sensitive values, which brokers do not return.
    pub value: Option<String>,
    /// Where the value comes from: `topic` for an override, else a broker or built-in default.
    pub source: &'static str,
    pub read_only: bool,
}

/// One change of an IncrementalAlterConfigs request.
pub enum ConfigChange<'a> {
    Set(&'a str, &'a str),
    Delete(&'a str),
}

/// Creates topic `name`; -1 partitions or replicas ask for the broker's default.
pub fn create_topic(
    connection: &Connection,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    let name_c = c_string(name)?;
    let mut error_text = [0 as c_char; 256];
    // SAFETY: librdkafka copies the name; the error text buffer outlives the call.
    let new_topic = unsafe {
        rd::rd_kafka_NewTopic_new(
            name_c.as_ptr(),
            partitions,
            replication_factor,
            error_text.as_mut_ptr(),
            error_text.len(),
        )
    };
    if new_topic.is_null() {
        // SAFETY: librdkafka wrote a NUL-terminated message into the buffer.
        let message = unsafe { owned(error_text.as_ptr()) }.unwrap_or_default();
        return Err(anyhow!("cannot create topic '{name}': {message}"));
    }
    let new_topic = NewTopic(new_topic);
    for (key, value) in configs {
        let (key_c, value_c) = (c_string(key)?, c_string(value)?);
        // SAFETY: the new topic is live; librdkafka copies both strings.
        let code = unsafe {
            rd::rd_kafka_NewTopic_set_config(new_topic.0, key_c.as_ptr(), value_c.as_ptr())
        };
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(anyhow!(
                "cannot set config '{key}': {}",
                RDKafkaErrorCode::from(code)
            ));
        }
    }
    let event = call(
        connection,
        "CreateTopics",
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATETOPICS,
        |client, options, queue| {
            let mut new_topics = [new_topic.0];
            // SAFETY: all pointers are live; librdkafka copies the new topics before returning.
            unsafe { rd::rd_kafka_CreateTopics(client, new_topics.as_mut_ptr(), 1, options, queue) }
        },
    )?;
    // SAFETY: the result and everything reached from it live as long as `event`.
    unsafe {
        let result = rd::rd_kafka_event_CreateTopics_result(event.0);
        if result.is_null() {
            return Err(anyhow!("the broker's answer to CreateTopics was not one"));
        }
        let mut count = 0;
        let topics = rd::rd_kafka_CreateTopics_result_topics(result, &mut count);
        if count != 1 {
            return Err(anyhow!(
                "the broker answered for {count} topics instead of '{name}'"
            ));
        }
        let topic = *topics;
        let code: RDKafkaErrorCode = rd::rd_kafka_topic_result_error(topic).into();
        if code == RDKafkaErrorCode::NoError {
            return Ok(());
        }
        Err(named_error(
            name,
            code,
            owned(rd::rd_kafka_topic_result_error_string(topic)),
        ))
    }
}

/// The configuration of topic `name`.
pub fn describe_topic(connection: &Connection, name: &str) -> anyhow::Result<Vec<ConfigEntry>> {
    let resource = Resource::topic(name)?;
    let event = call(
        connection,
        "DescribeConfigs",
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
        |client, options, queue| {
            let mut resources = [resource.0];
            // SAFETY: all pointers are live; librdkafka copies the resources before returning.
            unsafe {
                rd::rd_kafka_DescribeConfigs(client, resources.as_mut_ptr(), 1, options, queue)
            }
        },
    )?;
    // SAFETY: the result and everything reached from it live as long as `event`, which outlives
    // this function's reads; strings are copied out.
    unsafe {
        let result = rd::rd_kafka_event_DescribeConfigs_result(event.0);
        if result.is_null() {
            return Err(anyhow!(
                "the broker's answer to DescribeConfigs was not one"
            ));
        }
        let mut count = 0;
        let resources = rd::rd_kafka_DescribeConfigs_result_resources(result, &mut count);
        let resource = single_resource(name, resources, count)?;
        let mut entry_count = 0;
        let entries = rd::rd_kafka_ConfigResource_configs(resource, &mut entry_count);
        let mut described = Vec::with_capacity(entry_count);
        for index in 0..entry_count {
            let entry = *entries.add(index);
            described.push(ConfigEntry {
                name: owned(rd::rd_kafka_ConfigEntry_name(entry)).unwrap_or_default(),
                value: owned(rd::rd_kafka_ConfigEntry_value(entry)),
                source: source_name(rd::rd_kafka_ConfigEntry_source(entry)),
                read_only: rd::rd_kafka_ConfigEntry_is_read_only(entry) != 0,
            });
        }
        Ok(described)
    }
}

/// Sets and removes overrides of topic `name`, leaving its other overrides alone.
pub fn alter_topic(
    connection: &Connection,
    name: &str,
    changes: &[ConfigChange<'_>],
) -> anyhow::Result<()> {
    let resource = Resource::topic(name)?;
    for change in changes {
        let (key, value, operation) = match change {
            ConfigChange::Set(key, value) => (
                *key,
                Some(*value),
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
            ),
            ConfigChange::Delete(key) => (
                *key,
                None,
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
            ),
        };
        let key_c = c_string(key)?;
        let value_c = value.map(c_string).transpose()?;
        // SAFETY: the resource is live; librdkafka copies both strings.
        unsafe {
            let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                resource.0,
                key_c.as_ptr(),
                operation,
                value_c
                    .as_ref()
                    .map_or(std::ptr::null(), |value| value.as_ptr()),
            );
            if !error.is_null() {
                let message = owned(rd::rd_kafka_error_string(error)).unwrap_or_default();
                rd::rd_kafka_error_destroy(error);
                return Err(anyhow!("cannot change config '{key}': {message}"));
            }
        }
    }
    let event = call(
        connection,
        "IncrementalAlterConfigs",
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        |client, options, queue| {
            let mut resources = [resource.0];
            // SAFETY: as in `describe_topic`.
            unsafe {
                rd::rd_kafka_IncrementalAlterConfigs(
                    client,
                    resources.as_mut_ptr(),
                    1,
                    options,
                    queue,
                )
            }
        },
    )?;
    // SAFETY: as in `describe_topic`.
    unsafe {
        let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event.0);
        if result.is_null() {
            return Err(anyhow!(
                "the broker's answer to IncrementalAlterConfigs was not one"
            ));
        }
        let mut count = 0;
        let resources = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        single_resource(name, resources, count)?;
    }
    Ok(())
}

/// One committed offset of a consumer group.
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Every offset group `group` has committed (ListConsumerGroupOffsets for all partitions).
pub fn list_group_offsets(
    connection: &Connection,
    group: &str,
) -> anyhow::Result<Vec<CommittedOffset>> {
    let group_c = c_string(group)?;
    // SAFETY: librdkafka copies the group id; a null partition list asks for all partitions.
    let request =
        unsafe { rd::rd_kafka_ListConsumerGroupOffsets_new(group_c.as_ptr(), std::ptr::null()) };
    let request = ListGroupOffsets(request);
    let event = call(
        connection,
        "ListConsumerGroupOffsets",
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
        |client, options, queue| {
            let mut requests = [request.0];
            // SAFETY: all pointers are live; librdkafka copies the request before returning.
            unsafe {
                rd::rd_kafka_ListConsumerGroupOffsets(
                    client,
                    requests.as_mut_ptr(),
                    1,
                    options,
                    queue,
                )
            }
        },
    )?;
    // SAFETY: the result and everything reached from it live as long as `event`; strings are
    // copied out.
    unsafe {
        let result = rd::rd_kafka_event_ListConsumerGroupOffsets_result(event.0);
        if result.is_null() {
            return Err(anyhow!(
                "the broker's answer to ListConsumerGroupOffsets was not one"
            ));
        }
        let mut count = 0;
        let groups = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count);
        let group_result = single_group(group, groups, count)?;
        let partitions = rd::rd_kafka_group_result_partitions(group_result);
        if partitions.is_null() {
            return Ok(Vec::new());
        }
        let mut offsets = Vec::new();
        for index in 0..(*partitions).cnt.max(0) as usize {
            let element = &*(*partitions).elems.add(index);
            if element.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                let code: RDKafkaErrorCode = element.err.into();
                return Err(anyhow!("group '{group}': {code}"));
            }
            // A partition without a committed offset comes back as -1 (invalid).
            if element.offset < 0 {
                continue;
            }
            offsets.push(CommittedOffset {
                topic: owned(element.topic).unwrap_or_default(),
                partition: element.partition,
                offset: element.offset,
            });
        }
        Ok(offsets)
    }
}

/// Deletes group `group` with its committed offsets; the broker refuses a group with members.
pub fn delete_group(connection: &Connection, group: &str) -> anyhow::Result<()> {
    let group_c = c_string(group)?;
    // SAFETY: librdkafka copies the group id.
    let request = DeleteGroup(unsafe { rd::rd_kafka_DeleteGroup_new(group_c.as_ptr()) });
    let event = call(
        connection,
        "DeleteGroups",
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEGROUPS,
        |client, options, queue| {
            let mut requests = [request.0];
            // SAFETY: all pointers are live; librdkafka copies the request before returning.
            unsafe { rd::rd_kafka_DeleteGroups(client, requests.as_mut_ptr(), 1, options, queue) }
        },
    )?;
    // SAFETY: as in `list_group_offsets`.
    unsafe {
        let result = rd::rd_kafka_event_DeleteGroups_result(event.0);
        if result.is_null() {
            return Err(anyhow!("the broker's answer to DeleteGroups was not one"));
        }
        let mut count = 0;
        let groups = rd::rd_kafka_DeleteGroups_result_groups(result, &mut count);
        single_group(group, groups, count)?;
    }
    Ok(())
}

/// The one group of an answer, or the error the broker gave for it.
///
/// # Safety
///
/// `groups` must point to `count` live group results.
unsafe fn single_group(
    group: &str,
    groups: *mut *const rd::rd_kafka_group_result_t,
    count: usize,
) -> anyhow::Result<*const rd::rd_kafka_group_result_t> {
    if count != 1 {
        return Err(anyhow!(
            "the broker answered for {count} groups instead of '{group}'"
        ));
    }
    let group_result = *groups;
    let error = rd::rd_kafka_group_result_error(group_result);
    if error.is_null() {
        return Ok(group_result);
    }
    let code: RDKafkaErrorCode = rd::rd_kafka_error_code(error).into();
    let message = owned(rd::rd_kafka_error_string(error)).unwrap_or_default();
    Err(match code {
        RDKafkaErrorCode::GroupIdNotFound => anyhow!("group '{group}' does not exist"),
        _ if message.is_empty() => anyhow!("group '{group}': {code}"),
        _ => anyhow!("group '{group}': {message}"),
    })
}

/// Sends one admin request on a queue of its own and waits for its answer.
fn call(
    connection: &Connection,
    request: &str,
    operation: rd::rd_kafka_admin_op_t,
    send: impl FnOnce(*mut rd::rd_kafka_t, *mut rd::rd_kafka_AdminOptions_t, *mut rd::rd_kafka_queue_t),
) -> anyhow::Result<Event> {
    let client = connection.admin().inner().native_ptr();
    let timeout_ms = REQUEST_TIMEOUT.as_millis() as i32;
    // SAFETY: `client` is the live client owned by `connection`; the queue and options are
    // destroyed by their guards after the event has been taken off the queue.
    unsafe {
        let queue = Queue(rd::rd_kafka_queue_new(client));
        let options = Options(rd::rd_kafka_AdminOptions_new(client, operation));
        let mut error_text = [0 as c_char; 256];
        let code = rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            timeout_ms,
            error_text.as_mut_ptr(),
            error_text.len(),
        );
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(anyhow!("cannot set the request timeout: {code:?}"));
        }
        if operation == rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATETOPICS {
            // Wait until the topic exists everywhere, so the next command sees it.
            let code = rd::rd_kafka_AdminOptions_set_operation_timeout(
                options.0,
                timeout_ms,
                error_text.as_mut_ptr(),
                error_text.len(),
            );
            if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(anyhow!("cannot set the operation timeout: {code:?}"));
            }
        }
        send(client, options.0, queue.0);
        // librdkafka answers with a timeout itself after the request timeout; the margin only
        // guards against it not doing so.
        let event = rd::rd_kafka_queue_poll(queue.0, timeout_ms + 1000);
        if event.is_null() {
            return Err(connection.request_failed(
                request,
                KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut),
            ));
        }
        let event = Event(event);
        let code = rd::rd_kafka_event_error(event.0);
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(connection.request_failed(request, KafkaError::AdminOp(code.into())));
        }
        Ok(event)
    }
}

/// The one resource of an answer, or the error the broker gave for it.
///
/// # Safety
///
/// `resources` must point to `count` live resources.
unsafe fn single_resource(
    topic: &str,
    resources: *mut *const rd::rd_kafka_ConfigResource_t,
    count: usize,
) -> anyhow::Result<*const rd::rd_kafka_ConfigResource_t> {
    if count != 1 {
        return Err(anyhow!(
            "the broker answered for {count} resources instead of topic '{topic}'"
        ));
    }
    let resource = *resources;
    let code: RDKafkaErrorCode = rd::rd_kafka_ConfigResource_error(resource).into();
    if code == RDKafkaErrorCode::NoError {
        return Ok(resource);
    }
    Err(named_error(
        topic,
        code,
        owned(rd::rd_kafka_ConfigResource_error_string(resource)),
    ))
}

/// Words the error a broker gave for one topic, with its message where that says more.
fn named_error(topic: &str, code: RDKafkaErrorCode, message: Option<String>) -> anyhow::Error {
    match (code, message) {
        (RDKafkaErrorCode::UnknownTopicOrPartition, _) | (_, None) => topic_error(topic, code),
        (RDKafkaErrorCode::InvalidConfig, Some(message)) => {
            anyhow!("invalid config for topic '{topic}': {message}")
        }
        (RDKafkaErrorCode::TopicAlreadyExists, _) => topic_error(topic, code),
        (_, Some(message)) => anyhow!("topic '{topic}': {message} ({code})"),
    }
}

fn source_name(source: rd::rd_kafka_ConfigSource_t) -> &'static str {
    use rd::rd_kafka_ConfigSource_t as Source;
    match source {
        Source::RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG => "topic",
        Source::RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG => "dynamic-broker",
        Source::RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG => "dynamic-default-broker",
        Source::RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG => "static-broker",
        Source::RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG => "default",
        Source::RD_KAFKA_CONFIG_SOURCE_GROUP_CONFIG => "group",
        _ => "unknown",
    }
}

fn c_string(text: &str) -> anyhow::Result<CString> {
    CString::new(text).with_context(|| format!("'{text}' contains a NUL byte"))
}

/// Copies a C string that may be null.
///
/// # Safety
///
/// `text` must be null or point to a NUL-terminated string.
unsafe fn owned(text: *const c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    Some(CStr::from_ptr(text).to_string_lossy().into_owned())
}

/// Owns a new topic of a CreateTopics request.
struct NewTopic(*mut rd::rd_kafka_NewTopic_t);

impl Drop for NewTopic {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_NewTopic_new` and destroyed once.
        unsafe { rd::rd_kafka_NewTopic_destroy(self.0) }
    }
}

/// Owns a config resource of a request.
struct Resource(*mut rd::rd_kafka_ConfigResource_t);

impl Resource {
    fn topic(name: &str) -> anyhow::Result<Resource> {
        let name = c_string(name)?;
        // SAFETY: librdkafka copies the name.
        let resource = unsafe {
            rd::rd_kafka_ConfigResource_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                name.as_ptr(),
            )
        };
        Ok(Resource(resource))
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_ConfigResource_new` and destroyed once.
        unsafe { rd::rd_kafka_ConfigResource_destroy(self.0) }
    }
}

/// Owns the request of a ListConsumerGroupOffsets call.
struct ListGroupOffsets(*mut rd::rd_kafka_ListConsumerGroupOffsets_t);

impl Drop for ListGroupOffsets {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_ListConsumerGroupOffsets_new` and destroyed once.
        unsafe { rd::rd_kafka_ListConsumerGroupOffsets_destroy(self.0) }
    }
}

/// Owns the request of a DeleteGroups call.
struct DeleteGroup(*mut rd::rd_kafka_DeleteGroup_t);

impl Drop for DeleteGroup {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_DeleteGroup_new` and destroyed once.
        unsafe { rd::rd_kafka_DeleteGroup_destroy(self.0) }
    }
}

/// Owns a queue that receives one admin answer.
struct Queue(*mut rd::rd_kafka_queue_t);

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_queue_new` and destroyed once.
        unsafe { rd::rd_kafka_queue_destroy(self.0) }
    }
}

/// Owns the options of one admin request.
struct Options(*mut rd::rd_kafka_AdminOptions_t);

impl Drop for Options {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_AdminOptions_new` and destroyed once.
        unsafe { rd::rd_kafka_AdminOptions_destroy(self.0) }
    }
}

/// Owns an admin answer; its results live as long as it does.
struct Event(*mut rd::rd_kafka_event_t);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: taken off a queue by `rd_kafka_queue_poll` and destroyed once.
        unsafe { rd::rd_kafka_event_destroy(self.0) }
    }
}
