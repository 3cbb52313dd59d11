//! The servers under test: spawned in this run (and stopped with SIGTERM at the end) or given
//! as endpoints of running ones.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A child server process; SIGTERM (then SIGKILL after a grace period) when dropped.
pub struct Server {
    pub name: &'static str,
    /// `http://127.0.0.1:port` for tonic.
    pub url: String,
    child: Option<Child>,
    pub log: Option<PathBuf>,
}

impl Server {
    /// A server somebody else runs: nothing to stop.
    pub fn external(name: &'static str, endpoint: &str) -> Res<Self> {
        Ok(Self { name, url: to_http(endpoint)?, child: None, log: None })
    }

    /// Spawns `program args`, waits (up to `wait`) for a stdout line `<prefix>grpc://host:port`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        envs: &[(&str, &str)],
        prefix: &str,
        log: PathBuf,
        wait: Duration,
    ) -> Res<Self> {
        let stderr = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(stderr));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        let prefix_owned = prefix.to_string();
        // Drain stdout for the life of the child so it can never block on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.trim().strip_prefix(&prefix_owned) {
                        let _ = tx.send(rest.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let mut server = Self { name, url: String::new(), child: Some(child), log: Some(log.clone()) };
        let deadline = Instant::now() + wait;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(endpoint) => {
                    server.url = to_http(&endpoint)?;
                    return Ok(server);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("{name} exited with {status} before listening; see {}", log.display()).into());
            }
            if Instant::now() >= deadline {
                return Err(format!("{name} did not print its listening line within {wait:?}; see {}", log.display()).into());
            }
        }
    }

    /// The last `n` lines of the server's stderr log (for error reports).
    pub fn log_tail(&self, n: usize) -> String {
        let Some(log) = &self.log else { return String::new() };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM, wait up to 15 s, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("strom-bench: {} did not stop within 15 s of SIGTERM; killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `grpc://h:p`, `grpc+tcp://h:p`, `http://h:p` or `h:p` → `http://h:p`.
pub fn to_http(endpoint: &str) -> Res<String> {
    let rest = endpoint.trim();
    let rest = ["grpc+tcp://", "grpc://", "http://"].iter().find_map(|p| rest.strip_prefix(p)).unwrap_or(rest);
    if rest.is_empty() || !rest.contains(':') {
        return Err(format!("endpoint {endpoint:?} is not host:port").into());
    }
    Ok(format!("http://{rest}"))
}

/// Peak resident memory of a process in KiB (VmHWM), if readable.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok())
}

/// User + system CPU seconds a process has used so far, if readable.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks.max(1.0))
}

/// System-wide busy and steal CPU seconds since boot (from /proc/stat).
pub fn system_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    let steal = *v.get(7)?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((busy / ticks.max(1.0), steal / ticks.max(1.0)))
}

/// The 1-minute load average (from /proc/loadavg).
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// CPU seconds used so far by kernel threads (children of kthreadd: writeback, softirq, ...).
fn kernel_threads_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    // SAFETY: sysconf has no preconditions.
    let ticks = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64).max(1.0);
    let mut total = 0.0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ppid: u32 = fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        if pid == 2 || ppid == 2 {
            let u: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let s: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            total += (u + s) / ticks;
        }
    }
    total
}

/// Where the CPU went during a measurement: the bench client, the server under test, kernel
/// threads (writeback, network softirq), and other processes (e.g. other engineers' builds).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub client: f64,
    pub server: f64,
    pub kernel: f64,
    pub other: f64,
    pub steal: f64,
}

#[derive(Clone, Copy)]
struct CpuSample {
    busy: f64,
    steal: f64,
    client: f64,
    server: f64,
    kernel: f64,
}

pub struct CpuProbe {
    server_pid: Option<u32>,
    start: Option<CpuSample>,
}

impl CpuProbe {
    pub fn start(server_pid: Option<u32>) -> Self {
        Self { server_pid, start: Self::read(server_pid) }
    }

    fn read(server_pid: Option<u32>) -> Option<CpuSample> {
        let (busy, steal) = system_cpu()?;
        let client = cpu_seconds(std::process::id())?;
        let server = server_pid.and_then(cpu_seconds).unwrap_or(0.0);
        Some(CpuSample { busy, steal, client, server, kernel: kernel_threads_cpu() })
    }

    pub fn finish(&self) -> Option<CpuUse> {
        let a = self.start?;
        let b = Self::read(self.server_pid)?;
        let (client, server, kernel) = (b.client - a.client, b.server - a.server, b.kernel - a.kernel);
        Some(CpuUse { client, server, kernel, other: (b.busy - a.busy - client - server - kernel).max(0.0), steal: b.steal - a.steal })
    }
}

pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())));
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|c| c.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string())));
    let load = std::fs::read_to_string("/proc/loadavg").ok().map(|l| l.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|l| l.trim().to_string());
    serde_json::json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu, "mem_total": mem, "kernel": kernel, "loadavg_at_start": load,
        "free_page_reporting": free_page_reporting(),
    })
}

/// The guest kernel's free page reporting (virtio-balloon): when on, free blocks of
/// 2^order pages go back to the host, and the next touch of such a page costs a host fault
/// (~1 s per GB here). Which process pays depends on who freed and who allocates next: in the
/// bridge bench the node's page-cache writes paid it during the Java side's writes in some
/// runs (node CPU per M rows 1.3-1.4 s instead of 0.7-0.8 s). `None` when the kernel has no
/// such module; the order is 11 (beyond the largest block) when it was turned off.
pub fn free_page_reporting() -> Option<serde_json::Value> {
    let dir = std::path::Path::new("/sys/module/page_reporting/parameters");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok().and_then(|v| v.trim().parse::<u64>().ok());
    let order = read("page_reporting_order")?;
    Some(serde_json::json!({ "order": order, "active": order <= 10, "min_free_ms": read("min_free_ms") }))
}

/// What the machine's storage path gives, for reading the append figures: buffered writes of a
/// fresh file (page-cache growth), rewrites of cached pages, and 4 KiB write + fdatasync.
pub fn storage_probe(dir: &std::path::Path) -> Res<serde_json::Value> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("storage-probe");
    let file = std::fs::OpenOptions::new().create(true).read(true).write(true).truncate(true).open(&path)?;
    let chunk = vec![0x5au8; 8 << 20];
    let total: u64 = 512 << 20;
    let write_all = || -> Res<f64> {
        let t = Instant::now();
        let mut pos = 0;
        while pos < total {
            file.write_all_at(&chunk, pos)?;
            pos += chunk.len() as u64;
        }
        Ok(total as f64 / t.elapsed().as_secs_f64() / 1e6)
    };
    let fresh = write_all()?;
    let rewrite = write_all()?;
    file.set_len(0)?;
    file.sync_all()?;
    let mut h = crate::stats::histogram();
    let small = vec![1u8; 4096];
    for i in 0..100u64 {
        let t = Instant::now();
        file.write_all_at(&small, i * 4096)?;
        file.sync_data()?;
        crate::stats::record(&mut h, t.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(serde_json::json!({
        "fresh_write_mb_s": fresh.round(),
        "rewrite_mb_s": rewrite.round(),
        "write_4k_fdatasync_p50_us": h.value_at_quantile(0.5),
        "write_4k_fdatasync_p99_us": h.value_at_quantile(0.99),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_endpoint_spellings_when_converted_should_be_http() {
        assert_eq!(to_http("grpc://127.0.0.1:5").unwrap(), "http://127.0.0.1:5");
        assert_eq!(to_http("grpc+tcp://127.0.0.1:5").unwrap(), "http://127.0.0.1:5");
        assert_eq!(to_http("127.0.0.1:5").unwrap(), "http://127.0.0.1:5");
        assert!(to_http("grpc://").is_err());
    }
}
