//! The manager over a real metadata log in a temporary directory.

use uuid::Uuid;

use super::*;

async fn open(dir: &Path) -> MetadataManager {
    MetadataManager::open(dir, 1, "127.0.0.1", 9092)
        .await
        .unwrap()
}

fn request(name: &str, partitions: i32) -> TopicRequest {
    TopicRequest {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: 1,
        ..Default::default()
    }
}

#[tokio::test]
async fn topics_and_configs_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_id = {
        let manager = open(dir.path()).await;
        manager
            .create_topic(&request("orders", 3), false)
            .await
            .unwrap();
        manager
            .alter_configs(
                ConfigResource::Topic("orders".into()),
                &[("retention.ms".into(), Some("1000".into()))],
                false,
                false,
            )
            .await
            .unwrap();
        manager.create_partitions("orders", 5, false).await.unwrap();
        manager.image().cluster_id.clone()
    };
    let manager = open(dir.path()).await;
    let image = manager.image();
    assert_eq!(image.cluster_id, cluster_id);
    assert_eq!(cluster_id.len(), 22);
    let topic = image.topic("orders").unwrap();
    assert_eq!(topic.partitions.len(), 5);
    assert_eq!(
        topic.configs.get("retention.ms").map(String::as_str),
        Some("1000")
    );
    assert_eq!(image.brokers.len(), 1);
}

#[tokio::test]
async fn invalid_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path()).await;
    assert!(matches!(
        manager.create_topic(&request("bad name", 1), false).await,
        Err(MetadataError::InvalidTopicName(_))
    ));
    assert!(matches!(
        manager.create_topic(&request("ok", 0), false).await,
        Err(MetadataError::InvalidPartitions(_))
    ));
    let mut too_many_copies = request("ok", 1);
    too_many_copies.replication_factor = 3;
    assert!(matches!(
        manager.create_topic(&too_many_copies, false).await,
        Err(MetadataError::InvalidReplicationFactor(_))
    ));
    let mut bad_config = request("ok", 1);
    bad_config
        .configs
        .insert("retention.ms".into(), "soon".into());
    assert!(matches!(
        manager.create_topic(&bad_config, false).await,
        Err(MetadataError::InvalidConfig(_))
    ));
    manager
        .create_topic(&request("a.b", 1), true)
        .await
        .unwrap();
    assert!(
        manager.image().topic("a.b").is_none(),
        "validate-only created the topic"
    );
    manager
        .create_topic(&request("a.b", 1), false)
        .await
        .unwrap();
    assert!(manager
        .create_topic(&request("a_b", 1), false)
        .await
        .is_err());
    // Two billion partitions are refused before anything is sized by the count.
    assert!(matches!(
        manager.create_topic(&request("huge", i32::MAX), true).await,
        Err(MetadataError::PolicyViolation(_))
    ));
    assert!(matches!(
        manager.create_partitions("a.b", i32::MAX, false).await,
        Err(MetadataError::PolicyViolation(_))
    ));
    assert!(matches!(
        manager.create_topic(&request("a.b", 1), false).await,
        Err(MetadataError::TopicAlreadyExists(_))
    ));
}

async fn register(manager: &MetadataManager, broker_id: i32) {
    manager
        .execute(MetadataCommand::RegisterBroker {
            broker_id,
            host: "127.0.0.1".into(),
            port: 9000 + broker_id,
            rack: None,
            incarnation: None,
        })
        .await
        .unwrap();
}

async fn heartbeat(manager: &MetadataManager, broker_id: i32) {
    manager
        .execute(MetadataCommand::BrokerHeartbeat { broker_id })
        .await
        .unwrap();
}

/// A manager whose clock moves only when the test moves it, with this node (1) registered.
async fn open_on_manual_clock(dir: &Path) -> (MetadataManager, Arc<Mutex<Instant>>) {
    let now = Arc::new(Mutex::new(Instant::now()));
    let clock = now.clone();
    let log = Arc::new(LocalLog::open(dir).unwrap());
    let manager = MetadataManager::with_clock(log, Arc::new(move || *clock.lock()));
    register(&manager, 1).await;
    (manager, now)
}

#[tokio::test]
async fn a_silent_broker_is_fenced_and_its_leaderships_move_to_live_in_sync_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, now) = open_on_manual_clock(dir.path()).await;
    register(&manager, 2).await;
    register(&manager, 3).await;
    let mut replicated = request("replicated", 3);
    replicated.replication_factor = 3;
    manager.create_topic(&replicated, false).await.unwrap();
    manager
        .create_topic(&request("single", 3), false)
        .await
        .unwrap();
    let session = Duration::from_millis(50);
    assert!(manager
        .fence_silent_brokers(session)
        .await
        .unwrap()
        .is_empty());
    *now.lock() += session + Duration::from_millis(10);
    heartbeat(&manager, 1).await;
    heartbeat(&manager, 2).await;
    assert_eq!(
        manager.fence_silent_brokers(session).await.unwrap(),
        vec![3]
    );

    let image = manager.image();
    assert!(!image.is_live(3));
    for partition in &image.topic("replicated").unwrap().partitions {
        assert!(!partition.isr.contains(&3), "{partition:?}");
        assert_ne!(partition.leader, 3, "{partition:?}");
        assert!(image.is_live(partition.leader), "{partition:?}");
        let moved = partition.replicas[0] == 3;
        assert_eq!(partition.leader_epoch, i32::from(moved), "{partition:?}");
    }
    // A partition whose only replica is fenced keeps it in the ISR and has no leader.
    let orphan = image
        .topic("single")
        .unwrap()
        .partitions
        .iter()
        .find(|partition| partition.replicas == [3])
        .cloned()
        .unwrap();
    assert_eq!((orphan.leader, orphan.isr.clone()), (-1, vec![3]));

    // Heartbeating again unfences it and gives it back the partition only it can lead.
    heartbeat(&manager, 3).await;
    let image = manager.image();
    assert!(image.is_live(3));
    let back = &image.topic("single").unwrap().partitions[orphan.partition as usize];
    assert_eq!(
        (back.leader, back.leader_epoch),
        (3, orphan.leader_epoch + 1)
    );
    heartbeat(&manager, 1).await;
    heartbeat(&manager, 2).await;
    assert!(manager
        .fence_silent_brokers(session)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn only_a_topic_that_allows_it_gets_a_leader_from_outside_the_isr() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, now) = open_on_manual_clock(dir.path()).await;
    register(&manager, 2).await;
    register(&manager, 3).await;
    for (name, unclean) in [("careful", "false"), ("risky", "true")] {
        let mut topic = request(name, 1);
        topic.assignments = vec![vec![3, 2]];
        topic
            .configs
            .insert("unclean.leader.election.enable".into(), unclean.into());
        manager.create_topic(&topic, false).await.unwrap();
    }
    let session = Duration::from_millis(30);
    let fence_all_but = async |alive: &[i32]| {
        *now.lock() += session + Duration::from_millis(10);
        for broker in alive {
            heartbeat(&manager, *broker).await;
        }
        manager.fence_silent_brokers(session).await.unwrap()
    };
    assert!(manager
        .fence_silent_brokers(session)
        .await
        .unwrap()
        .is_empty());
    // 2 leaves the ISRs, comes back (without catching up), then the leader 3 dies.
    assert_eq!(fence_all_but(&[1, 3]).await, vec![2]);
    heartbeat(&manager, 2).await;
    assert_eq!(fence_all_but(&[1, 2]).await, vec![3]);
    let image = manager.image();
    let careful = &image.topic("careful").unwrap().partitions[0];
    assert_eq!((careful.leader, careful.isr.clone()), (-1, vec![3]));
    let risky = &image.topic("risky").unwrap().partitions[0];
    assert_eq!((risky.leader, risky.isr.clone()), (2, vec![2]));
}

#[tokio::test]
async fn a_reassignment_hosts_old_and_new_replicas_until_the_new_ones_are_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path()).await;
    for broker in [2, 3, 4] {
        register(&manager, broker).await;
    }
    let mut topic = request("moving", 1);
    topic.assignments = vec![vec![1, 2, 3]];
    let topic_id = manager.create_topic(&topic, false).await.unwrap().topic_id;
    let reassign = async |target: Vec<i32>| {
        manager
            .execute(MetadataCommand::Reassign {
                topic: "moving".into(),
                partition: 0,
                target,
            })
            .await
    };
    assert!(matches!(
        reassign(vec![4, 4]).await,
        Err(MetadataError::InvalidReplicaAssignment(_))
    ));
    reassign(vec![4, 2, 3]).await.unwrap();
    let partition = manager.image().topic("moving").unwrap().partitions[0].clone();
    assert_eq!(partition.replicas, vec![4, 2, 3, 1]);
    assert_eq!(
        (
            partition.adding_replicas.clone(),
            partition.removing_replicas.clone()
        ),
        (vec![4], vec![1])
    );
    assert_eq!(
        (partition.leader, partition.isr.clone()),
        (1, vec![1, 2, 3])
    );
    // The new replica catches up and the leader adds it: the move completes.
    manager
        .execute(MetadataCommand::AlterPartition {
            topic_id,
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1, 2, 3, 4],
        })
        .await
        .unwrap();
    let partition = manager.image().topic("moving").unwrap().partitions[0].clone();
    assert_eq!(partition.replicas, vec![4, 2, 3]);
    assert_eq!(partition.isr, vec![4, 2, 3]);
    assert_eq!((partition.leader, partition.leader_epoch), (4, 1));
    assert_eq!(partition.reassignment_target(), None);
}

#[tokio::test]
async fn a_broker_registering_from_a_new_run_is_fenced_and_its_leaderships_move() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path()).await;
    let run = async |incarnation: Uuid| {
        manager
            .execute(MetadataCommand::RegisterBroker {
                broker_id: 2,
                host: "127.0.0.1".into(),
                port: 9002,
                rack: None,
                incarnation: Some(incarnation),
            })
            .await
    };
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    run(first).await.unwrap();
    register(&manager, 3).await;
    let mut topic = request("led", 1);
    topic.assignments = vec![vec![2, 1, 3]];
    manager.create_topic(&topic, false).await.unwrap();
    let led = || manager.image().topic("led").unwrap().partitions[0].clone();
    assert_eq!((led().leader, led().leader_epoch), (2, 0));
    // The same run registering again (a retry) changes nothing.
    run(first).await.unwrap();
    assert_eq!((led().leader, led().leader_epoch), (2, 0));
    assert!(!manager.image().brokers[&2].fenced);
    // A new run: fenced at once, its leadership moves on at a new epoch.
    run(second).await.unwrap();
    assert!(manager.image().brokers[&2].fenced);
    let partition = led();
    assert_eq!((partition.leader, partition.leader_epoch), (1, 1));
    assert_eq!(partition.isr, vec![1, 3]);
    // Its first heartbeat unfences it; registering again from that run changes nothing.
    heartbeat(&manager, 2).await;
    assert!(!manager.image().brokers[&2].fenced);
    run(second).await.unwrap();
    assert!(!manager.image().brokers[&2].fenced);
}

#[tokio::test]
async fn a_cancelled_reassignment_goes_back_to_the_replicas_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path()).await;
    for broker in [2, 3, 4] {
        register(&manager, broker).await;
    }
    let mut topic = request("staying", 1);
    topic.assignments = vec![vec![1, 2, 3]];
    manager.create_topic(&topic, false).await.unwrap();
    let cancel = async || {
        manager
            .execute(MetadataCommand::CancelReassignment {
                topic: "staying".into(),
                partition: 0,
            })
            .await
    };
    assert!(matches!(
        cancel().await,
        Err(MetadataError::NoReassignmentInProgress(_))
    ));
    manager
        .execute(MetadataCommand::Reassign {
            topic: "staying".into(),
            partition: 0,
            target: vec![4, 2, 3],
        })
        .await
        .unwrap();
    cancel().await.unwrap();
    let partition = manager.image().topic("staying").unwrap().partitions[0].clone();
    // As in Kafka, the replicas come back in the order the reassignment left them: the
    // target's, then those it was removing.
    assert_eq!(partition.replicas, vec![2, 3, 1]);
    assert!(partition.adding_replicas.is_empty() && partition.removing_replicas.is_empty());
    assert_eq!(
        (
            partition.leader,
            partition.leader_epoch,
            partition.isr.clone()
        ),
        (1, 0, vec![1, 2, 3])
    );
    assert_eq!(partition.reassignment_target(), None);
    assert!(matches!(
        manager
            .execute(MetadataCommand::CancelReassignment {
                topic: "staying".into(),
                partition: 1,
            })
            .await,
        Err(MetadataError::UnknownTopic(_))
    ));
}

#[tokio::test]
async fn deleted_topics_are_gone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let manager = open(dir.path()).await;
        manager
            .create_topic(&request("gone", 1), false)
            .await
            .unwrap();
        manager.delete_topic("gone").await.unwrap();
        assert!(matches!(
            manager.delete_topic("gone").await,
            Err(MetadataError::UnknownTopic(_))
        ));
    }
    assert!(open(dir.path()).await.image().topic("gone").is_none());
}
