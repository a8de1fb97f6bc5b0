//! Queues of another type: a service started with quorum queues configured on a broker that has
//! this system's queues as classic ones refuses to start, naming the queue and the way out;
//! `webhooks queues migrate` converts them keeping their messages, after which it starts. On the
//! quorum tests' own vhost (`quorum_amqp_url`).

use webhooks_bus::{Bus, Outgoing, Topology};
use webhooks_model::config::QueueType;
use webhooks_test_support::bus::{quorum_amqp_url, topology, unique_prefix};
use webhooks_test_support::db::TestDatabase;

use crate::process::{Webhooks, rabbitmq, run_capturing};

#[tokio::test(flavor = "multi_thread")]
async fn classic_queues_stop_a_quorum_start_until_queues_migrate_converts_them() {
    let prefix = unique_prefix("e2e-queues");
    let classic = Topology { queue_type: QueueType::Classic, ..topology(&prefix) };
    let classic = Bus::connect(Some(&quorum_amqp_url()), classic).await.expect("classic queues");
    let jobs = (0..2).map(|n| {
        Outgoing::persistent(
            &classic.topology().jobs_exchange(),
            classic.topology().dispatch_routing_key(),
            format!("job {n}"),
        )
    });
    classic.publish_all(jobs.collect()).await.expect("jobs wait in the classic dispatch queue");
    classic.close().await;

    let database = TestDatabase::sqlite().await;
    let mut env =
        vec![("WEBHOOKS_DATABASE_URL", database.url().to_owned()), ("WEBHOOKS_BUS__QUEUE_TYPE", "quorum".to_owned())];
    env.extend(rabbitmq(&prefix));
    env.retain(|(key, _)| *key != "WEBHOOKS_AMQP_URL");
    env.push(("WEBHOOKS_AMQP_URL", quorum_amqp_url()));
    let (status, _, stderr) = run_capturing(&["router"], &env).await;
    assert!(!status.success(), "a router started on classic queues");
    assert!(
        stderr.contains(&format!("queue \\\"{prefix}.dead_letter\\\" exists on the broker with other arguments"))
            && stderr.contains("webhooks queues migrate"),
        "{stderr}"
    );

    let (status, stdout, stderr) = run_capturing(&["queues", "migrate"], &env).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains(&format!("{prefix}.dispatch: converted, 2 messages kept\n")), "{stdout}");
    assert!(stdout.contains(&format!("{prefix}.dead_letter: converted, 0 messages kept\n")), "{stdout}");
    let (status, stdout, _) = run_capturing(&["queues", "migrate"], &env).await;
    assert!(status.success());
    assert_eq!(stdout, "every queue is declared as configured: nothing to convert\n");

    let router = Webhooks::start(&["router"], &env).await;
    router.wait_ready().await;
    assert!(router.stop().await.success());
}
