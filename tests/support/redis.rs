//! Redis for cluster tests: the shared server (`OMNICHAT_TEST_REDIS_URL`, default
//! 127.0.0.1:6379) with a key prefix of each test's own, or a private `redis-server` a test may
//! stop and start again.

use std::process::Stdio;
use std::time::Duration;

use omnichat::Config;
use tokio::process::{Child, Command};

/// The shared Redis the cluster tests use.
pub fn shared_url() -> String {
    std::env::var("OMNICHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Configures a replica for the cluster of `url` with `prefix` (one per test, so tests running
/// at once on one Redis do not hear each other).
pub fn clustered(url: &str, prefix: &str) -> impl Fn(&mut Config) + Clone + use<> {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    move |config: &mut Config| {
        config.redis_url = Some(url.clone().into());
        config.redis_prefix = prefix.clone();
    }
}

/// A `redis-server` of the test's own on a free port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (Debian's redis-server package)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "redis-server did not start on {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().await.expect("kill redis-server");
    }
}
