//! Starting and stopping the `webhooks` binary.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use webhooks_test_support::http::Client;

/// The binary built next to this test (`make test` builds it first).
pub fn binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let binary = profile_dir.join("webhooks");
    assert!(binary.exists(), "{} is missing: run `cargo build --workspace --bins` first", binary.display());
    binary
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// A running `webhooks` process; killed on drop.
pub struct Webhooks {
    child: Child,
    /// A client for its API.
    pub client: Client,
    /// What it printed on standard output, line by line, read until it answered.
    pub stdout_lines: Vec<String>,
}

impl Webhooks {
    /// Starts `webhooks <args>` with `env`, and waits until its API answers.
    pub async fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut command = Command::new(binary());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WEBHOOKS_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", log_filter())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("webhooks starts");
        // Its logs join the test's own output, which the test harness shows for a failing test
        // (or with --nocapture) rather than for every one.
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                eprintln!("{line}");
            }
        });
        let client = Client::new(&format!("http://127.0.0.1:{port}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut stdout_lines = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "webhooks did not answer within 60 s");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("webhooks exited early: {status}");
            }
            if reqwest::get(format!("{}/healthz", client.base_url())).await.is_ok() {
                break;
            }
            if let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_millis(100), stdout.next_line()).await {
                stdout_lines.push(line);
            }
        }
        // Whatever was printed before the first answer is now in the pipe.
        while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_millis(200), stdout.next_line()).await {
            stdout_lines.push(line);
        }
        Self { child, client, stdout_lines }
    }

    /// Waits until its `/readyz` answers 200 (for a router: its index is loaded).
    pub async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.client.base_url());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !reqwest::get(&url).await.is_ok_and(|answer| answer.status().is_success()) {
            assert!(tokio::time::Instant::now() < deadline, "not ready within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its `/metrics` text, as served.
    async fn metrics_text(&self) -> String {
        reqwest::get(format!("{}/metrics", self.client.base_url()))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("a text body")
    }

    /// Its `/metrics`, after checking that `promtool check metrics` accepts them.
    pub async fn checked_metrics(&self) -> String {
        let text = self.metrics_text().await;
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs (make test installs it)");
        let mut stdin = promtool.stdin.take().expect("piped stdin");
        stdin.write_all(text.as_bytes()).await.expect("metrics written to promtool");
        drop(stdin);
        let output = promtool.wait_with_output().await.expect("promtool finishes");
        assert!(
            output.status.success(),
            "promtool rejects the metrics: {}{}\n{text}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        text
    }

    /// Its process id.
    fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Kills it with SIGKILL, as a crash would end it, and waits until it is gone.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL sent");
        self.child.wait().await.expect("an exit status");
    }

    /// Its resident memory now and at its highest so far, from `/proc/PID/status`.
    pub fn memory(&self) -> Memory {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
        let kib = |field: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("{field} missing from {path}"))
        };
        Memory { rss_kib: kib("VmRSS:"), peak_kib: kib("VmHWM:") }
    }

    /// The value of the sample `series` (name and labels, as printed) of its metrics; 0 when
    /// absent, as Prometheus leaves out label sets never counted.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |value| value.trim().parse().expect("a number"))
    }

    /// Waits until the router of this process holds `hooks` enabled hooks in its index (its
    /// `webhooks_router_hooks`): the changes made through the API have reached it. Fails the test
    /// at `deadline`.
    pub async fn wait_for_index(&self, hooks: usize, deadline: tokio::time::Instant) {
        loop {
            let indexed = self.metric("webhooks_router_hooks").await;
            if indexed == hooks as f64 {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the router indexes {indexed} hooks, not {hooks}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running");
        let status = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await.expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("webhooks stops within 30 s of SIGTERM")
            .expect("an exit status")
    }
}

/// A process's resident memory.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Resident now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Resident at its highest (`VmHWM`), KiB.
    pub peak_kib: u64,
}

/// The settings that put a process on the local RabbitMQ under its own `prefix`, with queues the
/// broker deletes once the test is over.
pub fn rabbitmq(prefix: &str) -> [(&'static str, String); 3] {
    [
        ("WEBHOOKS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
        ("WEBHOOKS_BUS__PREFIX", prefix.to_owned()),
        ("WEBHOOKS_BUS__QUEUE_EXPIRES_SECONDS", "60".to_owned()),
    ]
}

/// Runs `webhooks <args>` to completion; its exit status.
pub async fn run_to_end(args: &[&str], env: &[(&str, String)]) -> std::process::ExitStatus {
    let mut command = Command::new(binary());
    command.args(args).env_clear().env("RUST_LOG", log_filter()).stdout(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(Duration::from_secs(60), command.status()).await.expect("finishes").expect("runs")
}

/// Runs `webhooks <args>` to completion; its exit status, standard output and standard error.
pub async fn run_capturing(args: &[&str], env: &[(&str, String)]) -> (std::process::ExitStatus, String, String) {
    let mut command = Command::new(binary());
    command.args(args).env_clear().env("RUST_LOG", log_filter());
    for (key, value) in env {
        command.env(key, value);
    }
    let output =
        tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("finishes").expect("runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8 output");
    (output.status, text(output.stdout), text(output.stderr))
}

/// The log filter of the processes started: `WEBHOOKS_E2E_LOG` (e.g. `webhooks_router=debug`)
/// when set, to look into a failing test; warnings and errors otherwise.
fn log_filter() -> String {
    std::env::var("WEBHOOKS_E2E_LOG").unwrap_or_else(|_| "warn".to_owned())
}
