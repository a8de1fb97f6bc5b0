//! A RabbitMQ cluster of a test's own: N `rabbitmq-server` nodes on this machine, started in
//! parallel and clustered, each with its own node name, ports on 127.0.0.1, data, logs and
//! configuration, so that a test can stop and restart a node (the leader of a quorum queue, say)
//! while the machine's RabbitMQ (`rabbit@localhost`, port 5672), shared by every other test, is
//! never touched.
//!
//! Every command runs RabbitMQ's own scripts rather than Debian's wrappers in /usr/sbin, which
//! switch to the `rabbitmq` user and its home (hence its Erlang cookie). `HOME` is the cluster's
//! directory, which holds the cookie its nodes and its CLI calls share. The machine's
//! `rabbitmq-env.conf` (which names the node `rabbit@localhost`) is replaced by an empty file and
//! the two settings of it that matter are kept: Erlang distribution and epmd on 127.0.0.1 only.
//! No plugin is enabled, so no management or Prometheus listener fights the machine's ports.
//!
//! Setup failures panic with the node's log: this is test support.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use webhooks_model::ids::random_id;

/// Where Debian keeps RabbitMQ's own scripts; elsewhere they are on the `PATH`.
const DEBIAN_SCRIPTS: &str = "/usr/lib/rabbitmq/bin";

/// How long a node may take to boot (three boot at once on a busy machine).
const BOOT_PATIENCE: Duration = Duration::from_secs(180);

/// How long a CLI call may take: a call starts an Erlang VM of its own, about 1.5 s on an idle
/// machine.
const CLI_PATIENCE: Duration = Duration::from_secs(120);

/// How long a quorum queue may go without a leader (an election after its leader stopped).
const ELECTION_PATIENCE: Duration = Duration::from_secs(30);

/// How long dropping the cluster waits for its nodes to shut down before killing them.
const DROP_PATIENCE: Duration = Duration::from_secs(30);

/// Ports are picked here: below Linux's ephemeral range (32768 and up), so no outgoing
/// connection or port-0 listener of another test takes one between the pick and the node's
/// bind, and away from the ports of the CLI's own Erlang node (35672 to 35682).
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The machine's RabbitMQ's distribution port, free while it is stopped, not to be taken.
const MACHINE_DIST_PORT: u16 = 25_672;

/// A running cluster; its nodes are stopped and their files deleted when it is dropped.
pub struct RabbitCluster {
    /// Holds the cookie, the shared files and a directory per node.
    dir: PathBuf,
    /// Where `rabbitmq-server` and `rabbitmqctl` are.
    scripts: PathBuf,
    nodes: Vec<Node>,
    /// How long starting and clustering the nodes took.
    launch_time: Duration,
}

struct Node {
    /// `wh-<run>-<letter>@localhost`.
    name: String,
    amqp_port: u16,
    dist_port: u16,
    /// Its configuration, data (`data/`) and logs (`log/`).
    dir: PathBuf,
    /// Started (or being started) and not stopped since.
    running: bool,
}

impl RabbitCluster {
    /// Starts `size` nodes in parallel, waits until each has booted, then joins every other
    /// node to the first and checks that all are running in one cluster.
    pub async fn launch(size: usize) -> RabbitCluster {
        assert!((1..=26).contains(&size), "a cluster of 1 to 26 nodes, not {size}");
        let launched = Instant::now();
        let scripts = scripts();
        let run = &random_id()[..8];
        let dir = std::env::temp_dir().join(format!("webhooks-rabbit-{run}"));
        fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        // From here on a panic drops the cluster, which stops whatever was started and deletes
        // the directory.
        let mut cluster = RabbitCluster { dir, scripts, nodes: Vec::new(), launch_time: Duration::ZERO };
        let cookie = cluster.dir.join(".erlang.cookie");
        write(&cookie, &random_id().to_uppercase());
        // Erlang refuses a cookie others can read.
        fs::set_permissions(&cookie, fs::Permissions::from_mode(0o400))
            .unwrap_or_else(|error| panic!("cannot restrict {}: {error}", cookie.display()));
        write(&cluster.dir.join("rabbitmq-env.conf"), "");
        write(&cluster.dir.join("enabled_plugins"), "[].\n");
        let ports = free_ports(2 * size);
        for (index, pair) in ports.chunks(2).enumerate() {
            let letter = char::from(b'a' + index as u8);
            let node_dir = cluster.dir.join(letter.to_string());
            for sub in ["data", "log", "conf.d"] {
                let path = node_dir.join(sub);
                fs::create_dir_all(&path).unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
            }
            write(&node_dir.join("rabbitmq.conf"), &format!("listeners.tcp.local = 127.0.0.1:{}\n", pair[0]));
            cluster.nodes.push(Node {
                name: format!("wh-{run}-{letter}@localhost"),
                amqp_port: pair[0],
                dist_port: pair[1],
                dir: node_dir,
                running: false,
            });
        }
        for index in 0..size {
            cluster.spawn(index).await;
        }
        futures_util::future::join_all((0..size).map(|index| cluster.wait_booted(index))).await;
        if size > 1 {
            let first = cluster.nodes[0].name.clone();
            let others = 1..size;
            futures_util::future::join_all(others.clone().map(|index| cluster.ctl_ok(index, &["stop_app"]))).await;
            // One at a time: each join changes the cluster's membership.
            for index in others.clone() {
                cluster.ctl_ok(index, &["join_cluster", &first]).await;
            }
            futures_util::future::join_all(others.map(|index| cluster.ctl_ok(index, &["start_app"]))).await;
        }
        let mut expected: Vec<String> = cluster.nodes.iter().map(|node| node.name.clone()).collect();
        expected.sort();
        let running = cluster.running_nodes().await;
        assert_eq!(running, expected, "every node runs in one cluster");
        cluster.launch_time = launched.elapsed();
        cluster
    }

    /// How long [`RabbitCluster::launch`] took to start and cluster the nodes.
    pub fn launch_time(&self) -> Duration {
        self.launch_time
    }

    /// How many nodes the cluster has.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// The AMQP URL of every node, in order.
    pub fn amqp_urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|index| self.url(index)).collect()
    }

    /// The AMQP URL of node `index`, as `guest` (allowed over the loopback interface).
    pub fn url(&self, index: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.nodes[index].amqp_port)
    }

    /// The Erlang name of node `index`.
    pub fn node(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// Whether node `index` runs (it has not been stopped, or has been started again).
    pub fn is_running(&self, index: usize) -> bool {
        self.nodes[index].running
    }

    /// The names of the nodes running in the cluster, sorted, as a running node sees them.
    pub async fn running_nodes(&self) -> Vec<String> {
        let status = self.ctl_ok(self.a_running_node(), &["cluster_status", "--formatter", "json"]).await;
        let status: Value = serde_json::from_str(&status)
            .unwrap_or_else(|error| panic!("cluster_status is not JSON ({error}): {status}"));
        let mut running: Vec<String> = status["running_nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("cluster_status without running_nodes: {status}"))
            .iter()
            .filter_map(|node| node.as_str().map(str::to_owned))
            .collect();
        running.sort();
        running
    }

    /// The index of the node leading quorum queue `queue` of vhost `/`, waiting for an election
    /// if it has no leader. A classic queue has no leader: for one, the node that holds it.
    pub async fn leader_of(&self, queue: &str) -> usize {
        let deadline = Instant::now() + ELECTION_PATIENCE;
        loop {
            let answer = self
                .ctl_ok(self.a_running_node(), &["list_queues", "name", "type", "leader", "--formatter", "json"])
                .await;
            let queues: Vec<Value> = serde_json::from_str(&answer)
                .unwrap_or_else(|error| panic!("list_queues is not JSON ({error}): {answer}"));
            let found = queues
                .iter()
                .find(|listed| listed["name"] == queue)
                .unwrap_or_else(|| panic!("no queue {queue} on the cluster: {answer}"));
            let leader = if found["type"] == "classic" {
                self.holder_of_classic(queue).await
            } else {
                // A stopped node is reported as leader until the others have elected one.
                let leader = found["leader"].as_str().unwrap_or_default();
                self.nodes.iter().position(|node| node.running && node.name == leader)
            };
            if let Some(leader) = leader {
                return leader;
            }
            assert!(Instant::now() < deadline, "queue {queue} had no leader for {ELECTION_PATIENCE:?}: {found}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The running node that holds classic queue `queue`, if any does.
    async fn holder_of_classic(&self, queue: &str) -> Option<usize> {
        for index in (0..self.nodes.len()).filter(|&index| self.nodes[index].running) {
            let answer = self.ctl_ok(index, &["list_queues", "--local", "name", "--formatter", "json"]).await;
            let queues: Vec<Value> = serde_json::from_str(&answer)
                .unwrap_or_else(|error| panic!("list_queues is not JSON ({error}): {answer}"));
            if queues.iter().any(|listed| listed["name"] == queue) {
                return Some(index);
            }
        }
        None
    }

    /// Stops node `index` entirely (its Erlang VM exits), as an operator or a crash would.
    pub async fn stop(&mut self, index: usize) {
        assert!(self.nodes[index].running, "node {} is already stopped", self.nodes[index].name);
        if let Err(error) = self.ctl(index, &["shutdown"]).await {
            // The node is to be gone whatever its shutdown said.
            kill_node(&self.nodes[index]);
            assert!(node_pid(&self.nodes[index]).is_none(), "node {} does not stop: {error}", self.nodes[index].name);
        }
        self.nodes[index].running = false;
    }

    /// Starts stopped node `index` again, as it was, and waits until it has booted (and so
    /// rejoined the cluster).
    pub async fn start(&mut self, index: usize) {
        assert!(!self.nodes[index].running, "node {} is already running", self.nodes[index].name);
        self.spawn(index).await;
        self.wait_booted(index).await;
    }

    /// Runs `rabbitmq-server -detached` for node `index`: it returns once the node's VM is
    /// forked, long before the node has booted.
    async fn spawn(&mut self, index: usize) {
        let node = &self.nodes[index];
        let mut command = self.command("rabbitmq-server");
        command
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &node.name)
            .env("RABBITMQ_DIST_PORT", node.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", node.dir.join("data"))
            .env("RABBITMQ_LOG_BASE", node.dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", node.dir.join("rabbitmq.conf"))
            // Neither the machine's conf.d nor its advanced.config: the node's own, empty.
            .env("RABBITMQ_CONFIG_FILES", node.dir.join("conf.d"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", node.dir.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            // What the script prints before the VM detaches goes to a file: a pipe inherited by
            // the daemon would keep the test harness waiting for its end.
            .stdin(Stdio::null())
            .stdout(log_file(&node.dir.join("log/startup.log")))
            .stderr(log_file(&node.dir.join("log/startup.err")))
            // Out of the test's process group: a Ctrl-C aimed at the test is not the nodes'.
            .process_group(0);
        self.nodes[index].running = true;
        let status = tokio::process::Command::from(command)
            .status()
            .await
            .unwrap_or_else(|error| panic!("cannot run rabbitmq-server: {error}"));
        assert!(status.success(), "rabbitmq-server -detached failed ({status}): {}", self.log_tail(index));
    }

    /// Waits until node `index` listens for AMQP (polling the port costs nothing, a CLI call a
    /// VM), then confirms with `await_startup` that it has fully booted.
    async fn wait_booted(&self, index: usize) {
        let node = &self.nodes[index];
        let deadline = Instant::now() + BOOT_PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", node.amqp_port)).await.is_err() {
            assert!(
                !node.dir.join("log/erl_crash.dump").exists(),
                "node {} crashed while booting: {}",
                node.name,
                self.log_tail(index)
            );
            assert!(
                Instant::now() < deadline,
                "node {} did not listen on {} within {BOOT_PATIENCE:?}: {}",
                node.name,
                node.amqp_port,
                self.log_tail(index)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.ctl_ok(index, &["await_startup", "--timeout", &BOOT_PATIENCE.as_secs().to_string()]).await;
    }

    /// A running node to ask about the cluster.
    fn a_running_node(&self) -> usize {
        self.nodes.iter().position(|node| node.running).expect("a running node")
    }

    /// `rabbitmqctl -q -n <node> <args>`; its output, or a panic with its errors and the
    /// node's log.
    async fn ctl_ok(&self, index: usize, args: &[&str]) -> String {
        self.ctl(index, args).await.unwrap_or_else(|error| panic!("{error}\n{}", self.log_tail(index)))
    }

    /// `rabbitmqctl -q -n <node> <args>`; its output, or what it said when it failed.
    async fn ctl(&self, index: usize, args: &[&str]) -> Result<String, String> {
        let mut command = tokio::process::Command::from(self.cli(index, args));
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let what = format!("rabbitmqctl -n {} {}", self.nodes[index].name, args.join(" "));
        let output = tokio::time::timeout(CLI_PATIENCE, command.output())
            .await
            .map_err(|_| format!("{what} did not finish within {CLI_PATIENCE:?}"))?
            .map_err(|error| format!("cannot run {what}: {error}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!("{what} failed ({}): {stdout}{}", output.status, String::from_utf8_lossy(&output.stderr)))
        }
    }

    /// The command line of `rabbitmqctl -q -n <node> <args>`.
    fn cli(&self, index: usize, args: &[&str]) -> std::process::Command {
        let mut command = self.command("rabbitmqctl");
        command.args(["-q", "-n", &self.nodes[index].name]).args(args);
        command
    }

    /// RabbitMQ's script `script` with the environment every node and CLI call shares, and
    /// nothing of the test's own (a `RABBITMQ_*` of the caller's would change the nodes).
    fn command(&self, script: &str) -> std::process::Command {
        let mut command = std::process::Command::new(self.scripts.join(script));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // The CLI (Elixir) wants a UTF-8 locale.
            .env("LANG", "C.UTF-8")
            // The cookie's home.
            .env("HOME", &self.dir)
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .current_dir(&self.dir);
        command
    }

    /// The end of node `index`'s log, to explain a failure.
    fn log_tail(&self, index: usize) -> String {
        let node = &self.nodes[index];
        let log = node.dir.join("log").join(format!("{}.log", node.name));
        let text = fs::read_to_string(&log).unwrap_or_else(|error| format!("({}: {error})", log.display()));
        let startup = fs::read_to_string(node.dir.join("log/startup.err")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("last lines of {}:\n{tail}\n{startup}", log.display())
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        // Every running node shuts down at once, each within DROP_PATIENCE; whatever is left is
        // killed. The data is deleted anyway, so killing loses nothing.
        std::thread::scope(|scope| {
            for index in (0..self.nodes.len()).filter(|&index| self.nodes[index].running) {
                let command = self.cli(index, &["shutdown"]);
                scope.spawn(move || run_bounded(command, DROP_PATIENCE));
            }
        });
        for node in &self.nodes {
            kill_node(node);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Where RabbitMQ's own scripts are.
fn scripts() -> PathBuf {
    let debian = Path::new(DEBIAN_SCRIPTS);
    if debian.join("rabbitmq-server").exists() {
        return debian.to_owned();
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("rabbitmq-server").exists()))
        .expect("rabbitmq-server is installed (tests/support/ensure-services.sh rabbitmq installs it)")
}

/// `count` distinct ports of [`PORTS`] free on 127.0.0.1 now, from a random start.
fn free_ports(count: usize) -> Vec<u16> {
    let span = u32::from(PORTS.end - PORTS.start);
    let start = (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u32;
    let ports: Vec<u16> = (0..span)
        .map(|offset| PORTS.start + ((start + offset) % span) as u16)
        .filter(|&port| port != MACHINE_DIST_PORT && TcpListener::bind(("127.0.0.1", port)).is_ok())
        .take(count)
        .collect();
    assert_eq!(ports.len(), count, "{count} free ports in {PORTS:?}");
    ports
}

/// Writes `contents` to `path`.
fn write(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// A new file at `path`, for a process's output.
fn log_file(path: &Path) -> fs::File {
    fs::File::create(path).unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()))
}

/// Runs `command` to its end, or kills it after `patience`.
fn run_bounded(mut command: std::process::Command, patience: Duration) {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let Ok(mut child) = command.spawn() else { return };
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The process id of `node`'s VM while it runs: from its pid file, checked against the
/// process's command line (a pid file outlives its process, whose id may be reused).
fn node_pid(node: &Node) -> Option<u32> {
    let pid_file = node.dir.join("data").join(format!("{}.pid", node.name));
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let command_line = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&command_line).contains(&node.name).then_some(pid)
}

/// Kills `node`'s VM if it still runs, and waits (a little) until it is gone.
fn kill_node(node: &Node) {
    let Some(pid) = node_pid(node) else { return };
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while node_pid(node).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};
    use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "a minute of three RabbitMQ nodes: the rabbit_cluster fault scenario of `make test` runs the harness"]
    async fn a_quorum_queue_keeps_a_confirmed_message_when_its_leader_stops() {
        let mut cluster = RabbitCluster::launch(3).await;
        eprintln!("three nodes started and clustered in {:.1?}", cluster.launch_time());
        let mut names: Vec<String> = (0..3).map(|index| cluster.node(index).to_owned()).collect();
        names.sort();
        assert_eq!(cluster.running_nodes().await, names, "three nodes in one cluster");

        let queue = format!("cluster-test-{}", random_id());
        let connection =
            Connection::connect(&cluster.url(0), ConnectionProperties::default()).await.expect("node 1 answers");
        let channel = connection.create_channel().await.expect("a channel");
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel.queue_declare(queue.as_str().into(), durable, arguments).await.expect("a quorum queue");
        channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
        let confirmation = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                b"kept",
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("published")
            .await
            .expect("answered");
        assert!(matches!(confirmation, Confirmation::Ack(None)), "confirmed: {confirmation:?}");
        let _ = connection.close(200, "done".into()).await;

        let leader = cluster.leader_of(&queue).await;
        cluster.stop(leader).await;
        assert!(!cluster.is_running(leader));
        let other = (leader + 1) % 3;
        let new_leader = cluster.leader_of(&queue).await;
        assert_ne!(new_leader, leader, "another node leads once the leader is gone");
        let connection =
            Connection::connect(&cluster.url(other), ConnectionProperties::default()).await.expect("another node");
        let channel = connection.create_channel().await.expect("a channel");
        let message = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get answers")
            .expect("the confirmed message is still there");
        assert_eq!(message.delivery.data, b"kept");
        let _ = connection.close(200, "done".into()).await;

        let restarted = Instant::now();
        cluster.start(leader).await;
        eprintln!("node restarted in {:.1?}", restarted.elapsed());
        assert_eq!(cluster.running_nodes().await, names, "the node is back in the cluster");
    }
}
