//! The real `groundswell serve` as a child process, and what it costs in memory.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// The key every process of one benchmark run shares.
pub const SECRET_KEY: &str = "YmVuY2htYXJrLWJlbmNobWFyay1iZW5jaG1hcmstYmVuY2g";

pub struct Server {
    child: Child,
    pub address: SocketAddr,
    pid: u32,
}

/// Where to find the server: beside this benchmark's own executable (both are built into the
/// same `target/release`).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding the benchmark's own executable")?;
    let binary = me.with_file_name("groundswell");
    if !binary.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release --bin groundswell`, or use scripts/bench",
            binary.display()
        );
    }
    Ok(binary)
}

impl Server {
    /// Starts `binary serve` on a free loopback port and waits until it is ready; with
    /// `response_cache` false, the response cache is turned off (`RESPONSE_CACHE_BYTES=0`),
    /// otherwise it has its default.
    pub async fn start(
        binary: &Path,
        database_url: &str,
        mail_dir: &Path,
        pool: u32,
        response_cache: bool,
    ) -> anyhow::Result<Server> {
        let address = free_port()?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BIND_ADDR", address.to_string())
            .env("DATABASE_URL", database_url)
            .env("DATABASE_MAX_CONNECTIONS", pool.to_string())
            .env("PUBLIC_URL", format!("http://{address}"))
            .env("MAIL_DIR", mail_dir)
            .env(
                "SECRET_KEY",
                "YmVuY2htYXJrLWJlbmNobWFyay1iZW5jaG1hcmstYmVuY2g",
            )
            // Digests are queued by the digest scenario, not by the scheduler on its own clock.
            .env("DIGEST_INTERVAL_SECONDS", "0")
            // A deployment that puts memory first caps its connections lower than the default
            // (4096): the rush's 2,000 connections then pass through 512 places (README, "The
            // benchmark").
            .env("MAX_CONNECTIONS", "512")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if !response_cache {
            command.env("RESPONSE_CACHE_BYTES", "0");
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let server = Server {
            child,
            address,
            pid,
        };
        server.wait_until_ready().await?;
        Ok(server)
    }

    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.address);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server was not ready within a minute")
    }

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.address)
    }

    /// The server's resident memory now and at its peak, in MiB.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory_of(self.pid)
    }

    /// Stops the server as an operator would (SIGTERM), waiting for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let terminated = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .context("sending SIGTERM")?;
        if !terminated.success() {
            self.child.kill().await.ok();
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the server")?;
                if !status.success() {
                    bail!("the server exited with {status}");
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await.ok();
                bail!("the server did not stop within a minute of SIGTERM")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Memory {
    pub resident_mib: f64,
    pub peak_mib: f64,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// A process's resident memory now and at its peak, in MiB, from /proc.
pub fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading a process's memory from /proc")?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .with_context(|| format!("{name} missing from /proc/PID/status"))?;
        let kib: f64 = line
            .trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("reading {line}"))?;
        Ok(kib / 1024.0)
    };
    Ok(Memory {
        resident_mib: field("VmRSS:")?,
        peak_mib: field("VmHWM:")?,
    })
}
