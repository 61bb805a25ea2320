//! A private RabbitMQ node, started by a test on free ports with its own data
//! directory (the machine's `rabbitmq-server`, not the shared node), killed (SIGKILL to
//! its process group, like a crash) and restarted with the same name, ports and data.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

const SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

pub struct RabbitMqServer {
    port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RabbitMqServer {
    /// A node that is not running yet: free ports, `dir` for its config, data and logs.
    pub fn new(dir: &Path) -> RabbitMqServer {
        let port = free_port();
        let mut dist_port = free_port();
        while dist_port == port {
            dist_port = free_port();
        }
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )
        .expect("config");
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("env file");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        RabbitMqServer {
            port,
            dist_port,
            dir: dir.to_owned(),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Start it and wait until it completes an AMQP handshake (within 90 s: a node
    /// boots in about 5 s on a quiet machine).
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("log file");
        let d = |name: &str| self.dir.join(name);
        let child = Command::new(SCRIPT)
            .env("HOME", &self.dir) // its own Erlang cookie
            .env(
                "RABBITMQ_NODENAME",
                format!("keeltest{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_PID_FILE", d("pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .process_group(0) // so that stop() reaches the Erlang VM under the script
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server starts");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Kill its whole process group (SIGKILL) and reap the script.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let url = self.url();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "rabbitmq-server exited early ({status}); see {:?}",
                    self.dir
                );
            }
            let handshake = lapin::Connection::connect(&url, Default::default());
            if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(2), handshake).await {
                let _ = conn.close(200, "ready".into()).await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server not ready in 90 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for RabbitMqServer {
    fn drop(&mut self) {
        self.stop();
    }
}
