//! The metadata quorum over real TCP on loopback: election, replication, failover, restart
//! from the log and snapshots, learners, application calls, and DescribeQuorum.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cauce_metadata::quorum::{Quorum, QuorumConfig, QuorumError};
use cauce_metadata::MetadataRecord;
use common::{bind_ephemeral, fast_timing, has_topics, topic, wait_until, TestCluster};
use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Proposes one topic per name on `quorum`, one entry each.
async fn propose_topics(quorum: &Quorum, names: &[String]) {
    for name in names {
        quorum.propose(vec![topic(name)]).await.unwrap();
    }
}

/// Topic names `{prefix}-0..count`.
fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix}-{index}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_1_three_voters_elect_one_leader_and_replicate_to_every_image() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let mut follower_images = cluster.node(follower).subscribe();

    let records = vec![
        MetadataRecord::Cluster {
            cluster_id: "quorum-test".into(),
        },
        topic("alpha"),
    ];
    let outcome = cluster.node(leader).propose(records).await.unwrap();
    assert!(outcome.log_index > 0);
    assert!(outcome.term >= 1);
    let leader_image = cluster.node(leader).image();
    assert!(
        leader_image.topic("alpha").is_some(),
        "applied before propose returns"
    );
    assert_eq!(leader_image.cluster_id, "quorum-test");

    for node_id in [1, 2, 3] {
        let image = cluster
            .wait_for_image(node_id, "topic alpha", |image| {
                image.topic("alpha").is_some()
            })
            .await;
        assert_eq!(image.cluster_id, "quorum-test");
        assert_eq!(image.records_applied, leader_image.records_applied);
    }
    tokio::time::timeout(Duration::from_secs(5), follower_images.changed())
        .await
        .expect("a subscriber hears of the new image")
        .unwrap();
    assert!(follower_images.borrow().topic("alpha").is_some());

    let refused = cluster.node(follower).propose(vec![topic("beta")]).await;
    match refused {
        Err(QuorumError::NotLeader {
            leader: Some((leader_id, address)),
        }) => {
            assert_eq!(leader_id, leader);
            assert_eq!(address, cluster.addresses[&leader]);
        }
        other => panic!("expected NotLeader naming node {leader}, found {other:?}"),
    }
    assert!(cluster.node(leader).image().topic("beta").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_2_failover_elects_a_new_leader_that_keeps_every_record() {
    let mut cluster = TestCluster::start(3).await;
    let old_leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    let before = names("before", 3);
    propose_topics(cluster.node(old_leader), &before).await;

    cluster.stop(old_leader).await;
    let survivors: Vec<u64> = [1, 2, 3]
        .into_iter()
        .filter(|id| *id != old_leader)
        .collect();
    let stopped_at = Instant::now();
    let new_leader = cluster.wait_for_leader(&survivors).await;
    let election_time = stopped_at.elapsed();
    assert_ne!(new_leader, old_leader);
    assert!(
        election_time < Duration::from_secs(5),
        "election took {election_time:?}"
    );
    assert!(has_topics(&cluster.node(new_leader).image(), &before));

    let after = names("after", 2);
    propose_topics(cluster.node(new_leader), &after).await;
    let everything: Vec<String> = before.iter().chain(&after).cloned().collect();
    for node_id in &survivors {
        cluster
            .wait_for_image(*node_id, "every record", |image| {
                has_topics(image, &everything)
            })
            .await;
    }

    cluster.restart(old_leader).await;
    let image = cluster
        .wait_for_image(old_leader, "caught up after restart", |image| {
            has_topics(image, &everything)
        })
        .await;
    assert_eq!(image.topics.len(), everything.len());
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    cluster
        .node(leader)
        .propose(vec![topic("after-restart")])
        .await
        .unwrap();
    cluster
        .wait_for_image(old_leader, "a record proposed after its restart", |image| {
            image.topic("after-restart").is_some()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_3_a_restarted_node_rebuilds_its_image_from_snapshot_and_log_alone() {
    let mut cluster = TestCluster::start_tuned(3, |config| config.snapshot_after_entries = 3).await;
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    let follower = if leader == 3 { 2 } else { 3 };
    let topics = names("snapshotted", 12);
    propose_topics(cluster.node(leader), &topics).await;
    let expected = cluster
        .wait_for_image(follower, "every record", |image| has_topics(image, &topics))
        .await;

    let follower_dir = cluster.dir(follower);
    wait_until("a snapshot and a purged log on the follower", || {
        let snapshot = follower_dir.join("snapshot.json").exists();
        let log = std::fs::read(follower_dir.join("raft.log")).ok()?;
        // The first record's JSON follows its 8-byte header; a purge leaves its marker there.
        let purged = log
            .get(8..)
            .is_some_and(|json| json.starts_with(b"{\"Purged\""));
        (snapshot && purged).then_some(())
    })
    .await;

    cluster.stop_all().await;
    // A crash in the middle of an append leaves half a record behind.
    let mut log = OpenOptions::new()
        .append(true)
        .open(follower_dir.join("raft.log"))
        .unwrap();
    log.write_all(&[0, 0, 1, 0, 9, 9]).unwrap();
    drop(log);

    // Alone, without a quorum: the image comes from its snapshot and its committed entries.
    cluster.restart(follower).await;
    let rebuilt = cluster
        .wait_for_image(follower, "the image it had", |image| *image == *expected)
        .await;
    assert_eq!(rebuilt.topics.len(), topics.len());

    for node_id in [1, 2, 3].into_iter().filter(|id| *id != follower) {
        cluster.restart(node_id).await;
    }
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    cluster
        .node(leader)
        .propose(vec![topic("after-restart")])
        .await
        .unwrap();
    cluster
        .wait_for_image(follower, "a new record", |image| {
            image.topic("after-restart").is_some() && has_topics(image, &topics)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_4_a_learner_added_by_the_leader_receives_the_snapshot_and_the_log() {
    // Snapshots every few entries, so the early entries are purged before the learner joins
    // and it can only get them through a snapshot sent over the network.
    let mut cluster = TestCluster::start_tuned(3, |config| config.snapshot_after_entries = 3).await;
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let early = names("early", 12);
    propose_topics(cluster.node(leader), &early).await;

    let (listener, learner_address) = bind_ephemeral().await;
    cluster.start_node(4, listener).await;
    let refused = cluster
        .node(follower)
        .add_learner(4, learner_address.clone())
        .await;
    assert!(
        matches!(refused, Err(QuorumError::NotLeader { leader: Some((id, _)) }) if id == leader),
        "{refused:?}"
    );
    cluster
        .node(leader)
        .add_learner(4, learner_address.clone())
        .await
        .unwrap();
    // Adding it again is harmless.
    cluster
        .node(leader)
        .add_learner(4, learner_address.clone())
        .await
        .unwrap();

    cluster
        .wait_for_image(4, "records from before it joined", |image| {
            has_topics(image, &early)
        })
        .await;
    cluster
        .node(leader)
        .propose(vec![topic("late")])
        .await
        .unwrap();
    cluster
        .wait_for_image(4, "a record from after it joined", |image| {
            image.topic("late").is_some()
        })
        .await;
    assert_eq!(*cluster.node(4).image(), *cluster.node(leader).image());
    assert!(cluster.dir(4).join("snapshot.json").exists());
    assert_eq!(cluster.node(4).leader().map(|(id, _)| id), Some(leader));
    let refused = cluster.node(4).propose(vec![topic("from-learner")]).await;
    assert!(
        matches!(refused, Err(QuorumError::NotLeader { .. })),
        "{refused:?}"
    );

    let description = cluster.node(leader).describe().await;
    let learner_ids: Vec<u64> = description.learners.iter().map(|l| l.node_id).collect();
    assert_eq!(learner_ids, vec![4]);
    assert_eq!(description.learners[0].address, learner_address);
    assert_eq!(description.voters.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_5_application_calls_round_trip_and_garbage_does_not_crash_the_server() {
    let cluster = TestCluster::start(1).await;
    cluster.wait_for_leader(&[1]).await;
    let node = cluster.node(1);
    let address = cluster.addresses[&1].clone();

    let refused = node.call_app(&address, b"anyone?".to_vec()).await;
    assert!(
        matches!(refused, Err(QuorumError::Refused(_))),
        "{refused:?}"
    );

    node.set_app_handler(Arc::new(|request: Vec<u8>| {
        async move {
            let mut reply = b"echo:".to_vec();
            reply.extend(request);
            reply
        }
        .boxed()
    }));
    let reply = node.call_app(&address, b"ping".to_vec()).await.unwrap();
    assert_eq!(reply, b"echo:ping");

    // From another node, concurrently, over pooled connections.
    let mut caller_config = QuorumConfig::new(7, cluster.voters.clone(), cluster.dir(7));
    caller_config.timing = fast_timing();
    let caller = Quorum::start(caller_config).await.unwrap();
    let calls = (0..8).map(|index| caller.call_app(&address, vec![index]));
    let replies = futures::future::join_all(calls).await;
    for (index, reply) in replies.into_iter().enumerate() {
        assert_eq!(
            reply.unwrap(),
            [b"echo:".as_slice(), &[index as u8]].concat()
        );
    }

    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0, 0, 0, 3, 99, 1, 2],
        &[0, 0, 0, 4, 1, b'{', b'x', b'}'],
        &[0, 0, 0, 1, 128],
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("the server closes a connection that sent garbage");
        assert!(matches!(read, Ok(0) | Err(_)), "{bytes:?} got {read:?}");
    }

    assert_eq!(
        node.call_app(&address, b"still".to_vec()).await.unwrap(),
        b"echo:still"
    );
    node.propose(vec![topic("still-serving")]).await.unwrap();
    assert!(node.image().topic("still-serving").is_some());

    let (closed, closed_address) = bind_ephemeral().await;
    drop(closed);
    let unreachable = caller.call_app(&closed_address, b"x".to_vec()).await;
    assert!(
        matches!(unreachable, Err(QuorumError::Unreachable(_))),
        "{unreachable:?}"
    );
    caller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_6_describe_on_the_leader_lists_the_voters_with_their_log_ends() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    propose_topics(cluster.node(leader), &names("described", 4)).await;

    let description = wait_until_async_description(&cluster, leader).await;
    assert_eq!(description.leader, Some(leader));
    assert!(description.leader_epoch >= 1);
    let voter_ids: Vec<u64> = description.voters.iter().map(|v| v.node_id).collect();
    assert_eq!(voter_ids, vec![1, 2, 3]);
    assert!(description.learners.is_empty());
    // Membership, the new leader's blank entry and four proposals at least.
    assert!(description.high_watermark >= 6, "{description:?}");
    for voter in &description.voters {
        assert_eq!(
            voter.log_end_offset,
            Some(description.high_watermark),
            "{voter:?}"
        );
        assert_eq!(voter.address, cluster.addresses[&voter.node_id]);
        assert!(voter.last_fetch_ms.is_some(), "{voter:?}");
        assert!(voter.last_caught_up_ms.is_some(), "{voter:?}");
    }

    let follower = if leader == 1 { 2 } else { 1 };
    let seen_by_follower = cluster.node(follower).describe().await;
    assert_eq!(seen_by_follower.leader, Some(leader));
    assert_eq!(seen_by_follower.voters.len(), 3);
    let own = seen_by_follower
        .voters
        .iter()
        .find(|voter| voter.node_id == follower)
        .unwrap();
    assert_eq!(own.log_end_offset, Some(description.high_watermark));
}

/// Waits until the leader's description shows every voter at the leader's log end.
async fn wait_until_async_description(
    cluster: &TestCluster,
    leader: u64,
) -> cauce_metadata::quorum::QuorumDescription {
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        let description = cluster.node(leader).describe().await;
        let caught_up = description.voters.iter().all(|voter| {
            voter.log_end_offset == Some(description.high_watermark)
                && voter.last_caught_up_ms.is_some()
        });
        if caught_up {
            return description;
        }
        assert!(
            Instant::now() < deadline,
            "voters never caught up: {description:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_7_a_leader_cut_off_from_its_majority_times_out_proposals() {
    let mut cluster = TestCluster::start_tuned(3, |config| {
        config.timing.propose_timeout = Duration::from_millis(800)
    })
    .await;
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    for node_id in [1, 2, 3].into_iter().filter(|id| *id != leader) {
        cluster.stop(node_id).await;
    }
    let started = Instant::now();
    let result = cluster.node(leader).propose(vec![topic("lonely")]).await;
    assert!(matches!(result, Err(QuorumError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(cluster.node(leader).image().topic("lonely").is_none());
}
