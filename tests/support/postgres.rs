//! A PostgreSQL server of a test's own (initdb into a temp dir, its own port), for a test that
//! stops and starts it without disturbing the shared server the other tests use.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// The system user to run as when the tests run as root (PostgreSQL refuses root).
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

/// Debian's PostgreSQL binaries (the newest installed major version).
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions
        .sort_by_key(|bin| bin.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()));
    versions.pop()
}

/// The `postgres` system user's uid and gid.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|line| line.starts_with("postgres:"))?;
    let mut fields = line.split(':').skip(2);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

impl PgServer {
    /// A new cluster, started; `None` (with the reason printed) where PostgreSQL's binaries are
    /// missing, which CI (`OMNICHAT_REQUIRE_POSTGRES`) turns into a failure.
    pub async fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            let required = std::env::var_os("CI").is_some() || std::env::var_os("OMNICHAT_REQUIRE_POSTGRES").is_some();
            assert!(!required, "PostgreSQL's server binaries (initdb) are required here");
            eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
            return None;
        };
        let user = if is_root() { Some(postgres_user().expect("a postgres system user")) } else { None };
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster dir");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut server = Self { dir, bin, port, user, child: None };
        let mut initdb = std::process::Command::new(server.bin.join("initdb"));
        initdb.args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"]).arg(server.data());
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().expect("initdb runs");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        server.restart().await;
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) and waits until it takes connections.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let mut command = std::process::Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c"])
            .arg(format!("unix_socket_directories={}", self.dir.path().display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let mut command = Command::from(command);
        self.child = Some(command.kill_on_drop(true).spawn().expect("postgres runs"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(pool) = sqlx::PgPool::connect(&self.url()).await {
                pool.close().await;
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "postgres did not start on {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A fast shutdown (what `pg_ctl restart` does first): sessions are terminated, the server
    /// exits; waits until it has.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        let pid = child.id().expect("the postmaster's pid").to_string();
        let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIGINT to the postmaster");
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("postgres stops").expect("wait");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child
            && let Some(pid) = child.id()
        {
            // Immediate shutdown: the postmaster takes its backends with it.
            let _ = std::process::Command::new("kill").args(["-QUIT", &pid.to_string()]).status();
        }
    }
}
