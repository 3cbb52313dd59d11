//! Test harness for end-to-end tests against the real `strom` binary.
//!
//! [`TestServer`] spawns `strom serve --data-dir DIR --listen 127.0.0.1:0`, waits for the one
//! stdout line `strom: listening on grpc://127.0.0.1:PORT` (the node prints it only once it
//! accepts connections, so there is nothing to poll), and can stop the process the two ways
//! that matter for durability: SIGTERM (graceful) and SIGKILL (crash).
//!
//! The binary is `$STROM_BIN` or `<workspace>/target/debug/strom` (`cargo build -p
//! strom-server`). A missing binary fails the test with that instruction; tests never skip.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader as AsyncBufReader};
use tokio::process::{Child, Command};

pub use strom_flight_api as api;
use strom_flight_api::StromClient;

/// How long the node may take to print its listening line, and to exit after SIGTERM.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

const LISTENING_PREFIX: &str = "strom: listening on ";

/// Where the `strom` binary is: `$STROM_BIN`, else the workspace's debug build.
pub fn strom_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("STROM_BIN") {
        return PathBuf::from(path);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/strom")
}

/// Builder for [`TestServer`].
#[derive(Debug, Default)]
pub struct TestServerBuilder {
    data_dir: Option<PathBuf>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl TestServerBuilder {
    /// Uses this data directory instead of a fresh temporary one.
    pub fn data_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(path.into());
        self
    }

    /// Extra arguments after `serve --data-dir DIR --listen 127.0.0.1:0`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the node (e.g. `STROM_LOG_DURABILITY`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Spawns the node and waits until it listens.
    pub async fn start(self) -> TestServer {
        let work = tempfile::Builder::new().prefix("strom-it-").tempdir().expect("temp dir");
        let data_dir = self.data_dir.clone().unwrap_or_else(|| work.path().join("data"));
        let mut server = TestServer {
            work,
            data_dir,
            args: self.args,
            envs: self.envs,
            child: None,
            endpoint: String::new(),
            starts: 0,
            stderr_path: PathBuf::new(),
            stdout_lines: Arc::new(Mutex::new(Vec::new())),
        };
        server.spawn(None).await;
        server
    }
}

/// A running `strom` process with its data directory.
pub struct TestServer {
    /// Owns the default data directory and the stderr logs of every start.
    work: TempDir,
    data_dir: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    child: Option<Child>,
    endpoint: String,
    starts: usize,
    stderr_path: PathBuf,
    stdout_lines: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// Starts a node on a fresh temporary data directory.
    pub async fn start() -> TestServer {
        Self::builder().start().await
    }

    /// `grpc://127.0.0.1:PORT` as printed by the node.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The port the node listens on.
    pub fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("endpoint has a port")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id of the running node.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// The stderr log of the current (or last) start.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// The last `n` lines of the node's stderr (for assertion messages).
    pub fn stderr_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A connected client.
    pub async fn client(&self) -> StromClient {
        StromClient::connect(&self.endpoint)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}\n{}", self.endpoint, self.stderr_tail(30)))
    }

    /// Crashes the node: a real SIGKILL, no chance to flush anything.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL the node");
        }
    }

    /// Graceful shutdown: SIGTERM, then waits for the exit and returns its status.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the node is running");
        let pid = child.id().expect("the node has not been reaped") as libc::pid_t;
        // SAFETY: sending a signal to a child we own and have not reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed: {}", std::io::Error::last_os_error());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, child.wait()).await {
            Ok(status) => status.expect("wait for the node"),
            Err(_) => {
                let _ = child.kill().await;
                panic!("the node did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM\n{}", self.stderr_tail(30));
            }
        }
    }

    /// Starts the node again on the same data directory (and a new port). A node still
    /// running is stopped gracefully first.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.terminate().await;
            assert!(status.success(), "graceful shutdown before restart failed: {status}\n{}", self.stderr_tail(30));
        }
        self.spawn(None).await;
    }

    /// Starts the node again on the same data directory and the same port, so that clients
    /// holding the old endpoint (e.g. a retrying writer) reach the new process.
    pub async fn restart_same_port(&mut self) {
        assert!(self.child.is_none(), "stop the node (kill9/terminate) before restart_same_port");
        let port = self.port();
        self.spawn(Some(port)).await;
    }

    async fn spawn(&mut self, port: Option<u16>) {
        let bin = strom_bin();
        assert!(
            bin.exists(),
            "the strom binary is missing at {}: build it with `cargo build -p strom-server` (or set STROM_BIN)",
            bin.display()
        );
        warn_if_stale(&bin);
        self.starts += 1;
        self.stderr_path = self.work.path().join(format!("strom-{}.stderr.log", self.starts));
        let stderr = std::fs::File::create(&self.stderr_path).expect("stderr log file");
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let mut command = Command::new(&bin);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(&listen)
            .args(&self.args)
            .env("RUST_LOG", std::env::var("STROM_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe; it only sets a flag of the child process.
        // A test process killed from outside (e.g. by `timeout`) takes its node with it instead
        // of leaking it: the kernel sends SIGKILL to the node when its parent thread exits.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = AsyncBufReader::new(stdout).lines();
        let waited = tokio::time::timeout(STARTUP_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.expect("read the node's stdout") {
                if let Some(endpoint) = line.strip_prefix(LISTENING_PREFIX) {
                    return Some(endpoint.trim().to_string());
                }
                self.stdout_lines.lock().expect("not poisoned").push(line);
            }
            None
        })
        .await;
        let endpoint = match waited {
            Ok(Some(endpoint)) => endpoint,
            Ok(None) => {
                let status = child.wait().await.ok();
                panic!(
                    "the node exited ({status:?}) without printing its listening line\nstdout: {:?}\nstderr:\n{}",
                    self.stdout_lines.lock().expect("not poisoned"),
                    self.stderr_tail(40)
                );
            }
            Err(_) => {
                let _ = child.kill().await;
                panic!("the node did not print its listening line within {STARTUP_TIMEOUT:?}\nstderr:\n{}", self.stderr_tail(40));
            }
        };
        // Keep draining stdout so that a chatty node never blocks on a full pipe.
        let sink = self.stdout_lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().expect("not poisoned").push(line);
            }
        });
        self.endpoint = endpoint;
        self.child = Some(child);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.stderr_path.exists() {
            eprintln!("--- strom stderr ({}) ---\n{}\n---", self.stderr_path.display(), self.stderr_tail(60));
        }
        if let Some(child) = self.child.as_mut() {
            // start_kill is synchronous; kill_on_drop reaps it.
            let _ = child.start_kill();
        }
    }
}

/// Says so (once) when the binary is older than the server sources: tests would then check
/// yesterday's node.
fn warn_if_stale(bin: &Path) {
    static WARNED: AtomicUsize = AtomicUsize::new(0);
    if std::env::var_os("STROM_BIN").is_some() || WARNED.fetch_add(1, Ordering::Relaxed) > 0 {
        return;
    }
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else { return };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    if let Some(newest) = newest_mtime(&src) {
        if newest > built {
            eprintln!("warning: {} is older than server/src; run `cargo build -p strom-server` to test the current node", bin.display());
        }
    }
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().ok()?.modified().ok() };
        newest = newest.max(t);
    }
    newest
}

pub mod fixtures;
