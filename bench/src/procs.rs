//! Process plumbing of the worker-side benchmarks: the built `aix` and `nex` binaries spawned
//! with a pipe between them (as NEX runs a worker), the `nex import replay` report, and each
//! process' peak RSS (`VmHWM`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Deserialize;

use nex::protocol::{ControlFrame, Cursor, RunMode, RunStart};

/// The two binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub aix: PathBuf,
    pub nex: PathBuf,
}

impl Binaries {
    /// `aix` and `nex` next to the running executable (the same cargo profile as `nex-bench`),
    /// unless `dir` names another directory.
    pub fn locate(dir: Option<&Path>) -> std::io::Result<Self> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let b = Self {
            aix: dir.join("aix"),
            nex: dir.join("nex"),
        };
        for p in [&b.aix, &b.nex] {
            if !p.is_file() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} not built", p.display()),
                ));
            }
        }
        Ok(b)
    }
}

/// The fields of the `nex import replay` report the benchmarks check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    pub frames: u64,
    #[serde(default)]
    pub rejected: std::collections::BTreeMap<String, u64>,
    pub imported: u64,
    pub upserted: u64,
    pub skipped: u64,
    pub failed: u64,
    pub cursors_stored: u64,
    /// Source files the worker could not read (omitted from the report when none).
    #[serde(default)]
    pub failed_files: u64,
}

/// How a pair of processes ended.
#[derive(Debug, Clone)]
pub struct PairOutcome {
    pub secs: f64,
    pub report: ReplayReport,
    /// Exit statuses (128 + signal when killed).
    pub aix_status: i32,
    pub nex_status: i32,
    /// Peak resident set of each process, KiB (`VmHWM`, sampled every 10 ms).
    pub aix_rss_kib: u64,
    pub nex_rss_kib: u64,
    /// Bytes `nex` passed to write(2) (`wchar` of `/proc/<pid>/io`, read before it was reaped;
    /// 0 when unavailable).
    pub nex_wchar: u64,
}

/// A running `aix … | nex import replay --ledger L -` pair.
pub struct Pair {
    started: Instant,
    /// Which processes have been reaped (by pid, outside `Child`): never signal those again.
    reaped: [bool; 2],
    aix: Child,
    nex: Child,
    /// The worker's stdin when it was spawned as `aix worker --stdio`.
    pub control: Option<ChildStdin>,
    sampler: HwmSampler,
}

/// Samples `VmHWM` of `/proc/<pid>/status` of both processes every 10 ms until stopped.
/// (`ru_maxrss` of a spawned child also counts the pre-exec image of the parent, which makes
/// it useless when the harness itself is large.)
struct HwmSampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<[AtomicU64; 2]>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HwmSampler {
    /// `first`: peaks already read (KiB), e.g. right after a spawn.
    fn start(pids: [u32; 2], first: [u64; 2]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks: Arc<[AtomicU64; 2]> =
            Arc::new([AtomicU64::new(first[0]), AtomicU64::new(first[1])]);
        // A first sample now, before the thread is scheduled: `spawn` returned after the exec,
        // so the image is the child's own, and a process that ends before the thread's first
        // turn (a tiny corpus on a loaded machine) still has a peak, if a low one.
        for (i, pid) in pids.iter().enumerate() {
            if let Some(kib) = vm_hwm_kib(*pid) {
                peaks[i].fetch_max(kib, Ordering::Relaxed);
            }
        }
        let (s, p) = (stop.clone(), peaks.clone());
        let thread = std::thread::Builder::new()
            .name("hwm-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    for (i, pid) in pids.iter().enumerate() {
                        if let Some(kib) = vm_hwm_kib(*pid) {
                            p[i].fetch_max(kib, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            })
            .ok();
        Self {
            stop,
            peaks,
            thread,
        }
    }

    /// Stops sampling; the peaks in KiB.
    fn finish(&mut self) -> [u64; 2] {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        [
            self.peaks[0].load(Ordering::Relaxed),
            self.peaks[1].load(Ordering::Relaxed),
        ]
    }
}

/// A pair dropped before [`Pair::finish`] (a failed test, an early error) kills and reaps
/// both processes: a tail worker would otherwise run on.
impl Drop for Pair {
    fn drop(&mut self) {
        for (child, reaped) in [
            (&mut self.aix, self.reaped[0]),
            (&mut self.nex, self.reaped[1]),
        ] {
            if !reaped {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for HwmSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `VmHWM` (peak resident set, KiB) of a live process.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Roots flags of `aix`: the Claude dirs, and Codex dirs (an empty dir stands for none, so the
/// environment's defaults are never read).
pub fn root_args(claude: &[PathBuf], codex: &[PathBuf], empty: &Path) -> Vec<String> {
    let mut args = Vec::new();
    for d in claude {
        args.push("--claude-dir".into());
        args.push(d.display().to_string());
    }
    if claude.is_empty() {
        args.push("--claude-dir".into());
        args.push(empty.display().to_string());
    }
    for d in codex {
        args.push("--codex-dir".into());
        args.push(d.display().to_string());
    }
    if codex.is_empty() {
        args.push("--codex-dir".into());
        args.push(empty.display().to_string());
    }
    // The other sources are pinned to nothing, so a run never reads the machine's own Cursor,
    // OpenCode or Gemini data.
    for flag in ["--cursor-db", "--opencode-dir", "--gemini-dir"] {
        args.push(flag.into());
        args.push(empty.display().to_string());
    }
    args
}

impl Pair {
    /// Spawns `aix <aix_args>` with its stdout piped into `nex import replay --ledger L -`.
    /// With `control`, the worker's stdin is kept for control frames.
    pub fn spawn(
        bins: &Binaries,
        aix_args: &[String],
        ledger: &Path,
        control: bool,
    ) -> std::io::Result<Self> {
        let started = Instant::now();
        let mut aix = Command::new(&bins.aix)
            .args(aix_args)
            .env("AIX_LOG", "warn")
            .stdin(if control {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        // The worker's first peak now: with a tiny corpus it may be gone before `nex` exists.
        let aix_first_kib = vm_hwm_kib(aix.id()).unwrap_or(0);
        let frames = aix
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let nex = Command::new(&bins.nex)
            .args(["import", "replay", "--ledger"])
            .arg(ledger)
            .arg("-")
            .env("NEX_LOG", "warn")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::from(frames))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let nex = match nex {
            Ok(n) => n,
            Err(e) => {
                let _ = aix.kill();
                let _ = aix.wait();
                return Err(e);
            }
        };
        let control = aix.stdin.take();
        let sampler = HwmSampler::start([aix.id(), nex.id()], [aix_first_kib, 0]);
        Ok(Self {
            started,
            reaped: [false; 2],
            aix,
            nex,
            control,
            sampler,
        })
    }

    /// Writes a `run.start` on the worker's stdin.
    pub fn start(
        &mut self,
        mode: RunMode,
        cursors: Vec<Cursor>,
        run_id: &str,
    ) -> std::io::Result<()> {
        let frame = ControlFrame::RunStart(RunStart {
            mode,
            source: "aix".into(),
            persona_id: None,
            cursors,
            options: None,
        });
        self.send(&frame, run_id)
    }

    /// Writes one control frame on the worker's stdin.
    pub fn send(&mut self, frame: &ControlFrame, run_id: &str) -> std::io::Result<()> {
        let w = self
            .control
            .as_mut()
            .ok_or_else(|| std::io::Error::other("worker has no control input"))?;
        writeln!(w, "{}", frame.encode(run_id))?;
        w.flush()
    }

    /// `nex`'s process id.
    pub fn nex_pid(&self) -> u32 {
        self.nex.id()
    }

    /// `aix`'s process id.
    pub fn aix_pid(&self) -> u32 {
        self.aix.id()
    }

    /// Closes the worker's stdin: a `--stdio` worker then stops, flushes and completes.
    pub fn stop(&mut self) {
        drop(self.control.take());
    }

    /// Waits for both processes (a `--stdio` worker's stdin stays open until then, so a
    /// backfill is not cut short by EOF) and parses `nex`'s report; either process failing is
    /// an error.
    pub fn finish(self) -> std::io::Result<PairOutcome> {
        let o = self.finish_any()?;
        if o.nex_status != 0 {
            return Err(std::io::Error::other(format!(
                "nex import replay exited with status {}",
                o.nex_status
            )));
        }
        if o.aix_status != 0 {
            return Err(std::io::Error::other(format!(
                "aix exited with status {}",
                o.aix_status
            )));
        }
        Ok(o)
    }

    /// As [`Pair::finish`], whatever the exit statuses (a killed worker is 128 + 9); the report
    /// is parsed when `nex` printed one (else the default).
    pub fn finish_any(mut self) -> std::io::Result<PairOutcome> {
        let mut out = String::new();
        if let Some(mut s) = self.nex.stdout.take() {
            std::io::Read::read_to_string(&mut s, &mut out)?;
        }
        drop(self.control.take());
        let nex_wchar = proc_io_wchar(self.nex.id()).unwrap_or(0);
        let aix_status = wait_status(self.aix.id())?;
        self.reaped[0] = true;
        let nex_status = wait_status(self.nex.id())?;
        self.reaped[1] = true;
        let [aix_rss_kib, nex_rss_kib] = self.sampler.finish();
        let secs = self.started.elapsed().as_secs_f64();
        let report: ReplayReport = if nex_status == 0 {
            serde_json::from_str(out.trim())
                .map_err(|e| std::io::Error::other(format!("replay report: {e}")))?
        } else {
            ReplayReport::default()
        };
        Ok(PairOutcome {
            secs,
            report,
            aix_status,
            nex_status,
            aix_rss_kib,
            nex_rss_kib,
            nex_wchar,
        })
    }

    /// Sends SIGKILL to the worker (a crash).
    pub fn kill_worker(&mut self) -> std::io::Result<()> {
        self.aix.kill()
    }
}

/// `wchar` of `/proc/<pid>/io` (bytes passed to write-like calls).
pub fn proc_io_wchar(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Reaps `pid`; returns its exit status (128 + signal when killed).
fn wait_status(pid: u32) -> std::io::Result<i32> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(i32::try_from(pid).map_err(|_| std::io::Error::other("pid range"))?);
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
