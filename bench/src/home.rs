//! `nex` run as a user runs it, in a throwaway home: a temp `NEX_HOME` with production defaults
//! (no `config.toml`), the Claude Code source pointed at a corpus through `CLAUDE_CONFIG_DIR`,
//! and every other source at nothing (so a benchmark never reads the machine's own agent data).
//! The worker is the default one, `aix worker --stdio` next to `nex`.
//!
//! [`Daemon`] is `nex daemon` in that home; dropping it stops the daemon (SIGTERM, then SIGKILL)
//! and kills whatever it had spawned, so no worker outlives a failed benchmark.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use super::procs::Binaries;
use super::proctree;

/// A temp `NEX_HOME` whose only source is one Claude Code config dir.
#[derive(Debug, Clone)]
pub struct BenchHome {
    pub home: PathBuf,
    /// `CLAUDE_CONFIG_DIR`: the dir holding `projects/`.
    pub claude_config_dir: PathBuf,
    /// An empty dir standing for every other source.
    pub empty: PathBuf,
    pub nex: PathBuf,
}

impl BenchHome {
    /// Creates `home` (and an empty sibling dir for the other sources).
    ///
    /// # Errors
    /// The directories cannot be created.
    pub fn create(home: &Path, claude_config_dir: &Path, bins: &Binaries) -> std::io::Result<Self> {
        let empty = home.join("empty-source");
        std::fs::create_dir_all(&empty)?;
        Ok(Self {
            home: home.to_path_buf(),
            claude_config_dir: claude_config_dir.to_path_buf(),
            empty,
            nex: bins.nex.clone(),
        })
    }

    /// The agents ledger of this home.
    pub fn ledger(&self) -> PathBuf {
        self.home.join("agents.db")
    }

    /// `nex <args>` in this home. Logging is the default one (`RUST_LOG` removed).
    pub fn nex(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.nex);
        c.args(args)
            .env("NEX_HOME", &self.home)
            .env("CLAUDE_CONFIG_DIR", &self.claude_config_dir)
            .env("CODEX_HOME", &self.empty)
            // Cursor, OpenCode and Gemini default under HOME and the XDG dirs: none of the user's.
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("OPENCODE_DATA_DIR")
            .env_remove("GEMINI_DIR")
            .env_remove("NEX_LEDGER")
            .env_remove("NEX_WORKER_CMD")
            .env_remove("NEX_REPLICA_URL")
            .env_remove("RUST_LOG");
        c
    }

    /// `nex import backfill --wait --json` (no daemon: the foreground supervisor), its wall
    /// time and the final job record.
    ///
    /// # Errors
    /// As [`backfill_job`].
    pub fn backfill_wait(&self) -> std::io::Result<(f64, Value)> {
        let t = Instant::now();
        let out = self
            .nex(&["import", "backfill", "--wait", "--json"])
            .stdin(Stdio::null())
            .output()?;
        let secs = t.elapsed().as_secs_f64();
        Ok((secs, backfill_job(&out)?))
    }

    /// `nex import status --json`, when it answers.
    pub fn status(&self) -> Option<Value> {
        let out = self
            .nex(&["import", "status", "--json"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }
}

/// The final job record `nex import backfill --wait --json` printed.
///
/// # Errors
/// The command failed, printed no job record, or the job did not complete with no failed item
/// and no reject.
pub fn backfill_job(out: &Output) -> std::io::Result<Value> {
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(std::io::Error::other(format!(
            "nex import backfill --wait exited with {}: {}",
            out.status,
            err.lines().last().unwrap_or("")
        )));
    }
    let job: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| std::io::Error::other(format!("backfill job record: {e}")))?;
    let stat = |k: &str| job["stats"][k].as_u64().unwrap_or(0);
    if job["status"] != "completed" || stat("failed") > 0 || stat("rejected") > 0 {
        return Err(std::io::Error::other(format!(
            "backfill job ended {} with {} failed, {} rejected",
            job["status"],
            stat("failed"),
            stat("rejected")
        )));
    }
    Ok(job)
}

/// A running `nex daemon`; stopped (with its whole tree) when dropped.
pub struct Daemon {
    child: Child,
    reaped: bool,
}

impl Daemon {
    /// Spawns `nex daemon` in `home`, its log (stderr) appended to `log`.
    ///
    /// # Errors
    /// The log cannot be opened or the daemon cannot be spawned.
    pub fn spawn(home: &BenchHome, log: &Path) -> std::io::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = home
            .nex(&["daemon"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        Ok(Self {
            child,
            reaped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the daemon has exited (reaping it).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let st = self.child.try_wait().ok().flatten();
        if st.is_some() {
            self.reaped = true;
        }
        st
    }

    /// SIGTERM, then waits up to `grace` for a clean exit; SIGKILL of the daemon and of every
    /// process it had spawned after that. Returns the exit status when the daemon exited by
    /// itself within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if self.reaped {
            return None;
        }
        let spawned: Vec<u32> = proctree::tree(self.pid())
            .iter()
            .skip(1)
            .map(|p| p.pid)
            .collect();
        let pid = Pid::from_raw(i32::try_from(self.pid()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        let mut clean = None;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                clean = Some(st);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if clean.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.reaped = true;
        // A worker the daemon did not stop in time (or that it orphaned) dies here. A pid that
        // was reaped and reused within this call is not a risk worth more than this check.
        for p in spawned {
            if proctree::proc_cpu(p).is_some_and(|c| c.comm == "aix" || c.comm == "nex") {
                let _ = kill(
                    Pid::from_raw(i32::try_from(p).unwrap_or(i32::MAX)),
                    Signal::SIGKILL,
                );
            }
        }
        clean
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(15));
    }
}
