//! A librdkafka group of consumer processes over a 12-partition topic: each record is consumed
//! once while members join, leave and are `kill -9`ed, and once the group settles its
//! assignment covers every partition exactly once.
//!
//! Members are `cauce-test-group-consumer` processes that commit after every poll batch and print
//! each record, commit and assignment. Kafka is at-least-once, so a record may come twice only
//! if the member that first printed it was killed before committing it; the test works out
//! exactly which records those are from the killed member's own output.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cauce_integration_tests::clients::create_topic_with_admin_client;
use cauce_integration_tests::group_members::{GroupMemberProcess, MemberLine};
use cauce_integration_tests::BrokerProcess;
use rdkafka::config::ClientConfig;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;

/// The topic the group consumes.
const TOPIC: &str = "group-processes";
/// The group the member processes form.
const GROUP: &str = "group-processes-group";
/// Partitions of the topic: divisible by one, two and three members.
const PARTITIONS: i32 = 12;
/// Records written before the first member starts.
const RECORDS_BEFORE_MEMBERS: usize = 1_000;
/// Records written per tick of the background producer, which runs while members join, leave
/// and die, and its tick: about 2,000 more records over the run.
const RECORDS_PER_TICK: usize = 20;
const PRODUCE_TICK: Duration = Duration::from_millis(200);
/// The most records the background producer writes, however long the run takes.
const MAX_RECORDS_WHILE_MEMBERS_CHANGE: usize = 4_000;
/// How long member C holds each batch between printing and committing it, so that it can be
/// killed with records consumed but not committed, which Kafka must deliver again.
const SLOW_MEMBER_PROCESSING: &str = "--processing-ms=700";
/// How long the producer keeps writing after the last member joined.
const PRODUCE_AFTER_LAST_JOIN: Duration = Duration::from_secs(2);
/// How long no member may report a new assignment before the group counts as settled.
const QUIET_BEFORE_SETTLED: Duration = Duration::from_secs(2);
/// How long a group may take to settle after a membership change.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(25);
/// The session timeout the member binary asks for.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// How long the members may take to consume the last records once the producer is done.
const CONSUME_ALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a member may take to commit, leave and exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn member_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cauce-test-group-consumer"))
}

/// The value of record number `index`; unique, so that every delivery can be traced.
fn value_for(index: usize) -> String {
    format!("record-{index:05}")
}

/// The partition record number `index` is written to.
fn partition_for(index: usize) -> i32 {
    (index % PARTITIONS as usize) as i32
}

/// Collects delivery failures, so that a record the broker refused is not blamed on the group.
struct DeliveryFailures(Arc<Mutex<Vec<String>>>);

impl ClientContext for DeliveryFailures {}

impl ProducerContext for DeliveryFailures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.0.lock().unwrap().push(error.to_string());
        }
    }
}

/// Writes records `indexes`, each to its own partition, and insists that every one was
/// acknowledged. If `paced_until` is given, writes `RECORDS_PER_TICK` per `PRODUCE_TICK` and
/// stops early once it is set. Returns one past the last index written.
fn produce_records(
    bootstrap: &str,
    indexes: Range<usize>,
    paced_until: Option<&AtomicBool>,
) -> usize {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let producer: BaseProducer<DeliveryFailures> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create_with_context(DeliveryFailures(failures.clone()))
        .unwrap();
    let mut next_index = indexes.start;
    for index in indexes {
        if paced_until.is_some_and(|stop| stop.load(Ordering::SeqCst)) {
            break;
        }
        let value = value_for(index);
        while producer
            .send(
                BaseRecord::<(), String>::to(TOPIC)
                    .partition(partition_for(index))
                    .payload(&value),
            )
            .is_err()
        {
            producer.poll(Duration::from_millis(10));
        }
        next_index = index + 1;
        if paced_until.is_some() && index % RECORDS_PER_TICK == RECORDS_PER_TICK - 1 {
            producer.poll(Duration::ZERO);
            std::thread::sleep(PRODUCE_TICK);
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(
        *failures.lock().unwrap(),
        Vec::<String>::new(),
        "produce failures"
    );
    next_index
}

/// When a member last reported an assignment, and what it was.
type LastAssignment = Option<(Instant, BTreeSet<i32>)>;

/// Waits until every live member has reported an assignment, the assignments are pairwise
/// disjoint and cover every partition, and no member reported a new one for
/// `QUIET_BEFORE_SETTLED`. Returns when the last of those assignments was seen, and them.
fn wait_until_assignment_settles(
    live: &[&GroupMemberProcess],
    step: &str,
) -> (Instant, BTreeMap<String, BTreeSet<i32>>) {
    let all_partitions: BTreeSet<i32> = (0..PARTITIONS).collect();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let last: Vec<(String, LastAssignment)> = live
            .iter()
            .map(|member| (member.name.clone(), member.last_assignment()))
            .collect();
        if last.iter().all(|(_, assignment)| assignment.is_some()) {
            let assignments: BTreeMap<String, BTreeSet<i32>> = last
                .iter()
                .map(|(name, assignment)| (name.clone(), assignment.clone().unwrap().1))
                .collect();
            let last_seen = last
                .iter()
                .map(|(_, assignment)| assignment.as_ref().unwrap().0)
                .max()
                .unwrap();
            let owned_count: usize = assignments.values().map(BTreeSet::len).sum();
            let union: BTreeSet<i32> = assignments.values().flatten().copied().collect();
            let disjoint_and_complete =
                owned_count == PARTITIONS as usize && union == all_partitions;
            if disjoint_and_complete && last_seen.elapsed() >= QUIET_BEFORE_SETTLED {
                return (last_seen, assignments);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{step}: the group did not settle within {SETTLE_TIMEOUT:?}; live members' last \
             assignments: {:?}",
            last.iter()
                .map(|(name, assignment)| (name, assignment.as_ref().map(|(_, set)| set)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Insists that the settled assignment gives each live member the same number of partitions.
fn assert_balanced(assignments: &BTreeMap<String, BTreeSet<i32>>, step: &str) {
    let share = PARTITIONS as usize / assignments.len();
    for (name, partitions) in assignments {
        assert_eq!(
            partitions.len(),
            share,
            "{step}: member {name} owns {partitions:?}; all: {assignments:?}"
        );
    }
}

/// The values every member consumed so far.
fn consumed_values(members: &[&GroupMemberProcess]) -> BTreeSet<String> {
    members
        .iter()
        .flat_map(|member| member.lines())
        .filter_map(|line| match line {
            MemberLine::Record { value, .. } => Some(value),
            _ => None,
        })
        .collect()
}

/// One delivery of a record, as the analysis sees it.
#[derive(Debug)]
struct Delivery {
    /// The member that printed it.
    member: String,
    /// Its partition and offset.
    partition: i32,
    offset: i64,
    /// Whether the same member later committed an offset past it.
    committed_by_its_member: bool,
    /// Whether that member was killed with `kill -9`.
    member_was_killed: bool,
}

/// A member's complete output, once it has exited.
struct MemberOutput {
    /// Its name.
    name: String,
    /// Whether it was killed with `kill -9` (so it may have consumed without committing).
    was_killed: bool,
    /// Everything it printed.
    lines: Vec<MemberLine>,
}

/// Every delivery of every value, from the members' complete output.
fn deliveries_by_value(outputs: &[MemberOutput]) -> BTreeMap<String, Vec<Delivery>> {
    let mut deliveries: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    for output in outputs {
        // Walk backwards so that the highest later commit of each partition is known.
        let mut highest_later_commit: BTreeMap<i32, i64> = BTreeMap::new();
        for line in output.lines.iter().rev() {
            match line {
                MemberLine::Committed { partition, offset } => {
                    let highest = highest_later_commit.entry(*partition).or_insert(*offset);
                    *highest = (*highest).max(*offset);
                }
                MemberLine::Record {
                    partition,
                    offset,
                    value,
                } => deliveries.entry(value.clone()).or_default().push(Delivery {
                    member: output.name.clone(),
                    partition: *partition,
                    offset: *offset,
                    committed_by_its_member: highest_later_commit
                        .get(partition)
                        .is_some_and(|committed| committed > offset),
                    member_was_killed: output.was_killed,
                }),
                _ => {}
            }
        }
    }
    deliveries
}

/// The at-least-once contract, checked on the complete output: every produced record was
/// consumed, from its own partition; every record a member that was not killed consumed was
/// committed by it; a record came twice only if the first copy went to a killed member that had
/// not committed it, and every such record did come again. Returns how many came twice.
fn assert_each_record_consumed_once_except_after_a_kill(
    produced: usize,
    outputs: &[MemberOutput],
) -> usize {
    let deliveries = deliveries_by_value(outputs);
    let expected: BTreeSet<String> = (0..produced).map(value_for).collect();
    let consumed: BTreeSet<String> = deliveries.keys().cloned().collect();
    let missing: Vec<&String> = expected.difference(&consumed).take(10).collect();
    let unknown: Vec<&String> = consumed.difference(&expected).take(10).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{} produced records never consumed (first: {missing:?}); unknown values: {unknown:?}",
        expected.difference(&consumed).count()
    );

    let mut redelivered = 0;
    for index in 0..produced {
        let value = value_for(index);
        let copies = &deliveries[&value];
        let mut positions = BTreeSet::new();
        for copy in copies {
            assert_eq!(
                copy.partition,
                partition_for(index),
                "{value} consumed from the wrong partition: {copies:?}"
            );
            positions.insert(copy.offset);
            assert!(
                copy.member_was_killed || copy.committed_by_its_member,
                "{value} was consumed by {} (not killed) but never committed by it: {copies:?}",
                copy.member
            );
        }
        assert_eq!(
            positions.len(),
            1,
            "{value} came from two offsets: {copies:?}"
        );
        let uncommitted_by_killed = copies
            .iter()
            .filter(|copy| copy.member_was_killed && !copy.committed_by_its_member)
            .count();
        match (copies.len(), uncommitted_by_killed) {
            (1, 0) => {}
            (2, 1) => redelivered += 1,
            _ => panic!(
                "{value} consumed {} times, of which {uncommitted_by_killed} by a killed member \
                 after its last commit; only those may come again, exactly once: {copies:?}",
                copies.len()
            ),
        }
    }
    redelivered
}

/// Members A, B and C join one after the other, B stops cleanly, C is killed with `kill -9`, D
/// joins; records keep arriving throughout. Then every record is checked.
fn members_join_leave_and_die_without_losing_or_repeating_records(bootstrap: &str, strategy: &str) {
    let start = |name: &str, extra_args: &[&str]| {
        GroupMemberProcess::start(
            member_binary(),
            name,
            bootstrap,
            GROUP,
            TOPIC,
            strategy,
            extra_args,
        )
    };
    produce_records(bootstrap, 0..RECORDS_BEFORE_MEMBERS, None);

    let mut a = start("A", &[]);
    let (_, settled) = wait_until_assignment_settles(&[&a], "A alone");
    assert_balanced(&settled, "A alone");

    let producer_bootstrap = bootstrap.to_string();
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer_stop = stop_producing.clone();
    let producer = std::thread::spawn(move || {
        let last = RECORDS_BEFORE_MEMBERS + MAX_RECORDS_WHILE_MEMBERS_CHANGE;
        produce_records(
            &producer_bootstrap,
            RECORDS_BEFORE_MEMBERS..last,
            Some(&producer_stop),
        )
    });

    let mut b = start("B", &[]);
    let (_, settled) = wait_until_assignment_settles(&[&a, &b], "B joined");
    assert_balanced(&settled, "B joined");

    let mut c = start("C", &[SLOW_MEMBER_PROCESSING]);
    let (_, settled) = wait_until_assignment_settles(&[&a, &b, &c], "C joined");
    assert_balanced(&settled, "C joined");

    let stop_sent = Instant::now();
    let status = b.terminate(STOP_TIMEOUT);
    assert!(status.success(), "B exited with {status}");
    let (settled_at, settled) = wait_until_assignment_settles(&[&a, &c], "B stopped");
    assert_balanced(&settled, "B stopped");
    // B's LeaveGroup starts the rebalance; waiting for its session to expire would take longer.
    assert!(
        settled_at.duration_since(stop_sent) < SESSION_TIMEOUT - Duration::from_secs(1),
        "the group took {:?} to rebalance after B left cleanly",
        settled_at.duration_since(stop_sent)
    );

    // Kill C while it holds records it printed but has not committed yet.
    let holds_uncommitted_records = c.wait_for_latest_line(SETTLE_TIMEOUT, |line| {
        matches!(line, MemberLine::Record { .. })
    });
    let killed_at = Instant::now();
    c.kill9();
    assert!(
        holds_uncommitted_records,
        "C printed no record to be killed after"
    );
    let (settled_at, settled) = wait_until_assignment_settles(&[&a], "C killed");
    assert_balanced(&settled, "C killed");
    // C's partitions move only when its session expires: last heartbeat + session timeout.
    assert!(
        settled_at.duration_since(killed_at) >= SESSION_TIMEOUT - Duration::from_millis(1500),
        "C's partitions moved {:?} after kill -9, before its session could expire",
        settled_at.duration_since(killed_at)
    );

    let mut d = start("D", &[]);
    let (_, settled) = wait_until_assignment_settles(&[&a, &d], "D joined");
    assert_balanced(&settled, "D joined");

    std::thread::sleep(PRODUCE_AFTER_LAST_JOIN);
    stop_producing.store(true, Ordering::SeqCst);
    let produced = producer.join().expect("producer");
    let deadline = Instant::now() + CONSUME_ALL_TIMEOUT;
    while consumed_values(&[&a, &b, &c, &d]).len() < produced && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for member in [&mut a, &mut d] {
        let status = member.terminate(STOP_TIMEOUT);
        assert!(status.success(), "{} exited with {status}", member.name);
    }

    let outputs: Vec<MemberOutput> = [&a, &b, &c, &d]
        .iter()
        .map(|member| MemberOutput {
            name: member.name.clone(),
            was_killed: member.name == "C",
            lines: member.lines(),
        })
        .collect();
    let redelivered = assert_each_record_consumed_once_except_after_a_kill(produced, &outputs);
    assert!(
        redelivered > 0,
        "C was killed holding uncommitted records, yet none was delivered again"
    );
    eprintln!(
        "{strategy}: {produced} records, {redelivered} delivered again after C's kill -9; \
         records and other lines per member: {:?}",
        outputs
            .iter()
            .map(|output| {
                let records = output
                    .lines
                    .iter()
                    .filter(|line| matches!(line, MemberLine::Record { .. }))
                    .count();
                let other: Vec<&MemberLine> = output
                    .lines
                    .iter()
                    .filter(|line| matches!(line, MemberLine::Other(_)))
                    .collect();
                (&output.name, records, other)
            })
            .collect::<Vec<_>>()
    );
}

async fn run_with_strategy(strategy: &'static str) {
    let broker = BrokerProcess::start_with_config("group.initial.rebalance.delay.ms = 500\n");
    create_topic_with_admin_client(&broker.bootstrap(), TOPIC, PARTITIONS).await;
    let bootstrap = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        members_join_leave_and_die_without_losing_or_repeating_records(&bootstrap, strategy)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn eager_range_group_of_processes_consumes_each_record_once_through_joins_leaves_and_kill_9()
{
    run_with_strategy("range").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cooperative_sticky_group_of_processes_consumes_each_record_once_through_joins_leaves_and_kill_9(
) {
    run_with_strategy("cooperative-sticky").await;
}
