//! Bridges to a real three-node Redis Cluster: shard channels subscribed
//! on the node owning their slot and published across nodes; channels and
//! patterns relayed from whichever node a bridge is connected to.

#[path = "support/redis.rs"]
mod support;

use std::collections::BTreeSet;

use support::{PATIENCE, RedisCluster};
use tannoy::{Broker, MessageKind, Subscriber};
use tannoy_redis::Bridge;

/// The next message: (kind, channel, payload).
async fn next(sub: &mut Subscriber) -> (MessageKind, String, String) {
    let msg = tokio::time::timeout(PATIENCE, sub.recv_async())
        .await
        .expect("a message in time")
        .expect("the subscriber is open");
    let text = |b: &tannoy::Bytes| String::from_utf8_lossy(b).into_owned();
    (msg.kind(), text(msg.channel()), text(msg.payload()))
}

/// One shard channel per node, found by asking the cluster for owners.
fn one_channel_per_node(cluster: &RedisCluster) -> Vec<String> {
    let mut ports = BTreeSet::new();
    let mut channels = Vec::new();
    for i in 0..1000 {
        let channel = format!("orders:{{{i}}}");
        if ports.insert(cluster.owner(&channel).port()) {
            channels.push(channel);
        }
        if channels.len() == cluster.nodes.len() {
            return channels;
        }
    }
    panic!("no channel found for some node")
}

/// Two bridges seeded with the nodes in opposite orders: every shard
/// channel is subscribed on the node owning its slot and nowhere else
/// (PUBSUB SHARDNUMSUB per node), SPUBLISH through either bridge reaches
/// every local shard subscriber in both processes once, PUBLISH reaches
/// exact and pattern subscribers across nodes, and local interest ending
/// unsubscribes on the owning node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_channels_follow_slot_ownership_across_nodes() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let channels = one_channel_per_node(&cluster);
    let (a, b) = (Broker::new(), Broker::new());
    let mut urls = cluster.urls();
    let bridge_a = Bridge::builder()
        .cluster_nodes(urls.clone())
        .broker(a.clone())
        .start()
        .await
        .expect("bridge a starts");
    urls.reverse();
    let bridge_b = Bridge::builder()
        .cluster_nodes(urls)
        .broker(b.clone())
        .start()
        .await
        .expect("bridge b starts");

    let mut shard_a = a.subscriber();
    shard_a.ssubscribe(&channels);
    let mut shard_b = b.subscriber();
    shard_b.ssubscribe(&channels);
    let mut news_a = a.subscriber();
    news_a.subscribe(["news"]);
    news_a.psubscribe(["new*"]);
    let mut news_b = b.subscriber();
    news_b.psubscribe(["new*"]);
    bridge_a.sync().await.expect("a synced");
    bridge_b.sync().await.expect("b synced");

    for channel in &channels {
        let owner = cluster.owner(channel).port();
        for node in &cluster.nodes {
            let expected = if node.port() == owner { 2 } else { 0 };
            assert_eq!(
                node.shard_numsub(channel),
                expected,
                "{channel} on {}",
                node.port()
            );
        }
    }

    for (i, channel) in channels.iter().enumerate() {
        let bridge = if i % 2 == 0 { &bridge_a } else { &bridge_b };
        let payload = format!("p{i}");
        assert_eq!(
            bridge
                .spublish(channel, &payload)
                .await
                .expect("spublished"),
            2
        );
        for sub in [&mut shard_a, &mut shard_b] {
            assert_eq!(
                next(sub).await,
                (MessageKind::SMessage, channel.clone(), payload.clone())
            );
        }
    }

    // The count covers the node the publish went to only (Redis Cluster's
    // rule), so it is not asserted; delivery is.
    bridge_b.publish("news", "n1").await.expect("published");
    assert_eq!(
        next(&mut news_a).await,
        (MessageKind::Message, "news".into(), "n1".into())
    );
    assert_eq!(
        next(&mut news_a).await,
        (MessageKind::PMessage, "news".into(), "n1".into())
    );
    assert_eq!(
        next(&mut news_b).await,
        (MessageKind::PMessage, "news".into(), "n1".into())
    );
    for sub in [&shard_a, &shard_b, &news_a, &news_b] {
        assert!(sub.try_recv().is_err(), "each message once");
    }

    drop(shard_a);
    bridge_a.sync().await.expect("a synced");
    for channel in &channels {
        assert_eq!(cluster.owner(channel).shard_numsub(channel), 1, "{channel}");
    }
    drop(shard_b);
    bridge_b.sync().await.expect("b synced");
    for channel in &channels {
        assert_eq!(cluster.owner(channel).shard_numsub(channel), 0, "{channel}");
    }
    bridge_a.shutdown().await;
    bridge_b.shutdown().await;
}
