//! `cauce group ...`: list, describe, delete, reset-offsets.
//!
//! Groups are read with ListGroups (from every broker) and DescribeGroups (at the coordinator),
//! committed offsets with OffsetFetch and log ends with ListOffsets. A reset commits without
//! joining the group (generation -1, no member id), which the broker accepts only while the
//! group is empty: Kafka's own rule for resetting offsets.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::bail;
use cauce_client::admin::{CommittedOffset, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use cauce_client::kafka_protocol::error::ResponseError;
use cauce_client::kafka_protocol::messages::describe_groups_response::DescribedGroup;
use serde::Serialize;

use crate::admin::{find_topic, partition_ids, Connection, ConnectionArgs};
use crate::output::{self, Report, Table};

#[derive(clap::Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their state and protocol type.
    List,
    /// Show a group's members and, for every partition it committed, its lag.
    Describe {
        /// The group.
        group: String,
    },
    /// Delete a group and its committed offsets; the group must have no members.
    Delete {
        /// The group.
        group: String,
    },
    /// Move a group's committed offsets on one topic; the group must have no members.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
    ResetOffsets(ResetArgs),
}

#[derive(clap::Args)]
pub struct ResetArgs {
    /// The group.
    group: String,
    /// The topic whose offsets move.
    #[arg(long, value_name = "T")]
    topic: String,
    /// Only this partition [default: every partition of the topic].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// To the first offset still in the log.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end: the group skips everything not yet read.
    #[arg(long)]
    to_latest: bool,
    /// To offset N, kept within the log's first offset and its end.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,
    /// To the first record with a timestamp at or after MS (ms since the epoch), or the log end.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
    to_datetime: Option<i64>,
    /// Print the plan without committing it.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(connection_args: &ConnectionArgs, command: GroupCommand) -> anyhow::Result<()> {
    let connection = Connection::open(connection_args)?;
    let json = connection_args.json;
    match command {
        GroupCommand::List => output::print(&list(&connection)?, json),
        GroupCommand::Describe { group } => output::print(&describe(&connection, &group)?, json),
        GroupCommand::Delete { group } => {
            connection
                .block_on(connection.client().delete_group(&group))
                .map_err(|error| connection.group_failed("DeleteGroups", &group, error))?;
            output::print(&Deleted { group }, json)
        }
        GroupCommand::ResetOffsets(reset_args) => {
            output::print(&reset(&connection, reset_args)?, json)
        }
    }
}

/// One line of `group list`.
#[derive(Serialize)]
struct ListedGroup {
    group: String,
    state: String,
    /// `consumer` for Kafka consumers; empty for groups that only commit offsets.
    protocol_type: String,
}

#[derive(Serialize)]
#[serde(transparent)]
struct GroupList(Vec<ListedGroup>);

impl Report for GroupList {
    fn human(&self) -> String {
        let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
        for group in &self.0 {
            table.push(vec![
                group.group.clone(),
                group.state.clone(),
                group.protocol_type.clone(),
            ]);
        }
        table.render()
    }
}

fn list(connection: &Connection) -> anyhow::Result<GroupList> {
    let groups = connection
        .block_on(connection.client().list_groups())
        .map_err(|error| connection.request_failed("group list request", error))?;
    let mut listed = Vec::with_capacity(groups.len());
    for group in groups {
        // ListGroups before v4 does not say the state; DescribeGroups does.
        let state = match group.state.is_empty() {
            false => group.state,
            true => describe_group(connection, &group.group)?
                .map(|info| info.state)
                .unwrap_or_default(),
        };
        listed.push(ListedGroup {
            group: group.group,
            state,
            protocol_type: group.protocol_type,
        });
    }
    listed.sort_by(|left, right| left.group.cmp(&right.group));
    Ok(GroupList(listed))
}

/// `group describe`.
#[derive(Serialize)]
struct Description {
    group: String,
    state: String,
    protocol_type: String,
    /// The assignor the members agreed on, such as `range`; empty without members.
    protocol: String,
    members: Vec<Member>,
    offsets: Vec<PartitionLag>,
}

#[derive(Serialize)]
struct Member {
    member_id: String,
    client_id: String,
    host: String,
    /// Partitions by topic; empty when the assignment is not the consumer protocol's.
    assignment: BTreeMap<String, Vec<i32>>,
}

/// A committed offset beside the log end of its partition.
#[derive(Serialize)]
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: i64,
    log_end: i64,
    /// Records after the committed offset; 0 when the offset is at or past the end.
    lag: i64,
}

impl Report for Description {
    fn human(&self) -> String {
        let mut text = format!(
            "group '{}': state {}, protocol type {}, {} members\n",
            self.group,
            self.state,
            if self.protocol_type.is_empty() {
                "none"
            } else {
                &self.protocol_type
            },
            self.members.len()
        );
        if !self.members.is_empty() {
            let mut table = Table::new(&["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
            for member in &self.members {
                let assignment = member
                    .assignment
                    .iter()
                    .map(|(topic, partitions)| {
                        let partitions: Vec<String> =
                            partitions.iter().map(i32::to_string).collect();
                        format!("{topic}:{}", partitions.join(","))
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                table.push(vec![
                    member.member_id.clone(),
                    member.client_id.clone(),
                    member.host.clone(),
                    assignment,
                ]);
            }
            text.push('\n');
            text.push_str(&table.render());
        }
        if !self.offsets.is_empty() {
            let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"]);
            for offset in &self.offsets {
                table.push(vec![
                    offset.topic.clone(),
                    offset.partition.to_string(),
                    offset.committed.to_string(),
                    offset.log_end.to_string(),
                    offset.lag.to_string(),
                ]);
            }
            text.push('\n');
            text.push_str(&table.render());
        }
        text
    }
}

/// The group as DescribeGroups shows it.
fn describe_group(connection: &Connection, group: &str) -> anyhow::Result<Option<GroupInfoCopy>> {
    let described = connection.block_on(connection.client().describe_group(group));
    match described {
        Ok(described) => Ok(Some(GroupInfoCopy::from(&described))),
        Err(error) if error.code() == Some(ResponseError::GroupIdNotFound.code()) => Ok(None),
        Err(error) => Err(connection.group_failed("DescribeGroups", group, error)),
    }
}

/// What this module needs of a described group.
struct GroupInfoCopy {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

impl From<&DescribedGroup> for GroupInfoCopy {
    fn from(info: &DescribedGroup) -> GroupInfoCopy {
        GroupInfoCopy {
            state: info.group_state.to_string(),
            protocol_type: info.protocol_type.to_string(),
            protocol: info.protocol_data.to_string(),
            members: info
                .members
                .iter()
                .map(|member| Member {
                    member_id: member.member_id.to_string(),
                    client_id: member.client_id.to_string(),
                    host: member.client_host.to_string(),
                    assignment: Some(member.member_assignment.as_ref())
                        .filter(|assignment| !assignment.is_empty())
                        .and_then(decode_assignment)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }
}

fn describe(connection: &Connection, group: &str) -> anyhow::Result<Description> {
    let info = describe_group(connection, group)?;
    let committed = group_offsets(connection, group)?;
    let info = match info {
        Some(info) if !(is_dead(&info.state) && committed.is_empty()) => info,
        _ if committed.is_empty() => bail!("group '{group}' does not exist"),
        _ => GroupInfoCopy {
            state: "Empty".to_string(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        },
    };
    let mut offsets = Vec::with_capacity(committed.len());
    for offset in committed {
        let (_, log_end) = watermarks(connection, &offset.topic, offset.partition)?;
        offsets.push(PartitionLag {
            lag: (log_end - offset.offset).max(0),
            topic: offset.topic,
            partition: offset.partition,
            committed: offset.offset,
            log_end,
        });
    }
    offsets
        .sort_by(|left, right| (&left.topic, left.partition).cmp(&(&right.topic, right.partition)));
    Ok(Description {
        group: group.to_string(),
        state: info.state,
        protocol_type: info.protocol_type,
        protocol: info.protocol,
        members: info.members,
        offsets,
    })
}

/// Kafka describes a group it does not know as Dead.
fn is_dead(state: &str) -> bool {
    state.is_empty() || state.eq_ignore_ascii_case("dead")
}

/// Every offset the group committed.
fn group_offsets(connection: &Connection, group: &str) -> anyhow::Result<Vec<CommittedOffset>> {
    connection
        .block_on(connection.client().group_offsets(group))
        .map_err(|error| connection.group_failed("OffsetFetch", group, error))
}

/// The offset ListOffsets finds for `timestamp` in one partition.
fn list_offset(
    connection: &Connection,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> anyhow::Result<i64> {
    connection
        .block_on(connection.client().list_offset(topic, partition, timestamp))
        .map_err(|error| connection.topic_failed("list offsets request", topic, error))
}

/// The first offset in the log and the log end of one partition.
fn watermarks(connection: &Connection, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
    Ok((
        list_offset(connection, topic, partition, EARLIEST_TIMESTAMP)?,
        list_offset(connection, topic, partition, LATEST_TIMESTAMP)?,
    ))
}

/// Decodes a consumer protocol assignment: version, then topics each with their partitions.
fn decode_assignment(bytes: &[u8]) -> Option<BTreeMap<String, Vec<i32>>> {
    let mut reader = Reader(bytes);
    let _version = reader.i16()?;
    let topic_count = reader.i32()?;
    let mut assignment = BTreeMap::new();
    for _ in 0..topic_count.max(0) {
        let length = usize::try_from(reader.i16()?).ok()?;
        let topic = String::from_utf8(reader.take(length)?.to_vec()).ok()?;
        let partition_count = reader.i32()?;
        let mut partitions = Vec::new();
        for _ in 0..partition_count.max(0) {
            partitions.push(reader.i32()?);
        }
        assignment.insert(topic, partitions);
    }
    Some(assignment)
}

/// Reads big-endian fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, length: usize) -> Option<&[u8]> {
        if self.0.len() < length {
            return None;
        }
        let (head, tail) = self.0.split_at(length);
        self.0 = tail;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// `group delete`.
#[derive(Serialize)]
struct Deleted {
    group: String,
}

impl Report for Deleted {
    fn human(&self) -> String {
        format!("group '{}': deleted\n", self.group)
    }
}

/// `group reset-offsets`: the plan, and whether it was committed.
#[derive(Serialize)]
struct ResetPlan {
    group: String,
    dry_run: bool,
    partitions: Vec<PlannedOffset>,
}

#[derive(Serialize)]
struct PlannedOffset {
    topic: String,
    partition: i32,
    /// None where the group has committed nothing for the partition.
    current: Option<i64>,
    new: i64,
}

impl Report for ResetPlan {
    fn human(&self) -> String {
        let mut table = Table::new(&["TOPIC", "PARTITION", "CURRENT", "NEW"]);
        for planned in &self.partitions {
            table.push(vec![
                planned.topic.clone(),
                planned.partition.to_string(),
                planned
                    .current
                    .map_or_else(|| "-".to_string(), |offset| offset.to_string()),
                planned.new.to_string(),
            ]);
        }
        let mut text = table.render();
        if self.dry_run {
            let _ = writeln!(text, "dry run: nothing committed");
        }
        text
    }
}

fn reset(connection: &Connection, args: ResetArgs) -> anyhow::Result<ResetPlan> {
    let group = args.group.as_str();
    if let Some(info) = describe_group(connection, group)? {
        if !info.members.is_empty() {
            bail!("group '{group}' has active members; stop them first");
        }
    }
    let metadata = connection.metadata()?;
    let mut partitions = partition_ids(find_topic(&metadata, &args.topic)?);
    if let Some(partition) = args.partition {
        if !partitions.contains(&partition) {
            bail!(
                "topic '{}' has no partition {partition} (it has {})",
                args.topic,
                partitions.len()
            );
        }
        partitions = vec![partition];
    }

    let current: BTreeMap<i32, i64> = group_offsets(connection, group)?
        .into_iter()
        .filter(|offset| offset.topic == args.topic)
        .map(|offset| (offset.partition, offset.offset))
        .collect();

    let mut planned = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let (earliest, latest) = watermarks(connection, &args.topic, partition)?;
        let new = if args.to_earliest {
            earliest
        } else if args.to_latest {
            latest
        } else if let Some(offset) = args.to_offset {
            offset.clamp(earliest, latest)
        } else {
            let timestamp = args.to_datetime.unwrap_or(LATEST_TIMESTAMP);
            match list_offset(connection, &args.topic, partition, timestamp)? {
                // No record at or after the time: the group starts at the end.
                offset if offset < 0 => latest,
                offset => offset,
            }
        };
        planned.push(PlannedOffset {
            topic: args.topic.clone(),
            partition,
            current: current.get(&partition).copied(),
            new,
        });
    }

    if !args.dry_run {
        let offsets: Vec<CommittedOffset> = planned
            .iter()
            .map(|offset| CommittedOffset {
                topic: offset.topic.clone(),
                partition: offset.partition,
                offset: offset.new,
            })
            .collect();
        connection
            .block_on(connection.client().commit_group_offsets(group, &offsets))
            .map_err(|error| {
                let reason = match error.code() {
                    Some(_) => connection.group_failed("OffsetCommit", group, error),
                    None => connection.request_failed("OffsetCommit", error),
                };
                anyhow::anyhow!("cannot commit offsets of group '{group}': {reason}")
            })?;
    }
    Ok(ResetPlan {
        group: args.group.clone(),
        dry_run: args.dry_run,
        partitions: planned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_protocol_assignment_decodes_to_topics_and_partitions() {
        let mut bytes = vec![0, 0, 0, 0, 0, 1, 0, 6];
        bytes.extend_from_slice(b"orders");
        bytes.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
        let assignment = decode_assignment(&bytes).expect("decodes");
        assert_eq!(assignment.get("orders"), Some(&vec![0, 2]));
        assert_eq!(decode_assignment(&bytes[..10]), None);
    }
}
