//! A private `nats-server` with JetStream, started by a test on a free port with its
//! own store directory, stopped (SIGKILL, like a crash) and restarted on the same port
//! and store.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

const BINARY: &str = "/usr/sbin/nats-server";

pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// A server that is not running yet: a free port, `dir` for its store and log.
    pub fn new(dir: &Path) -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        NatsServer {
            port,
            dir: dir.to_owned(),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Start it and wait until it answers JetStream requests.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats-server.log"))
            .expect("log file");
        let child = Command::new(BINARY)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Kill it (SIGKILL) and reap it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Poll until a client connects and the JetStream API answers, within 20 s.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server exited early ({status}); see {:?}", self.dir);
            }
            if self.answers().await {
                return;
            }
            assert!(Instant::now() < deadline, "nats-server not ready in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn answers(&self) -> bool {
        let Ok(client) = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(1))
            .connect(self.url())
            .await
        else {
            return false;
        };
        // Any answer on the JetStream API means JetStream is up.
        let info = client.request("$JS.API.INFO", "".into());
        tokio::time::timeout(Duration::from_secs(1), info)
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
