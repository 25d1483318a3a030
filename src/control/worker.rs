//! Worker processes: the command to spawn, the spawn itself (own process group, piped stdio,
//! `kill_on_drop`), the pid file under `$NEX_HOME/run/`, signals, stderr forwarding, and the
//! killing of orphans a crashed daemon left behind.
//!
//! This is the only module that knows a worker is a process (PROTOCOL.md "Transport").

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use futures::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, LinesCodec};

use super::error::ControlError;
use super::port::WorkerOutput;

/// The argv of the worker. Default: the `aix` binary next to the current executable, with
/// `worker --stdio`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// Splits `line` on whitespace (no shell quoting: use the config's array form for paths
    /// with spaces).
    ///
    /// Errors: `worker_command_invalid` on an empty line.
    pub fn parse(line: &str) -> Result<WorkerCommand, ControlError> {
        WorkerCommand::from_argv(line.split_whitespace().map(str::to_owned).collect())
    }

    /// Errors: `worker_command_invalid` on an empty argv or program.
    pub fn from_argv(argv: Vec<String>) -> Result<WorkerCommand, ControlError> {
        let mut it = argv.into_iter();
        let program = it
            .next()
            .filter(|p| !p.trim().is_empty())
            .ok_or(ControlError::WorkerCommandInvalid("empty command"))?;
        Ok(WorkerCommand {
            program: PathBuf::from(program),
            args: it.collect(),
        })
    }

    /// `<dir of current exe>/aix worker --stdio`.
    ///
    /// Errors: `worker_command_invalid` when the current executable's path is unknown.
    pub fn default_aix() -> Result<WorkerCommand, ControlError> {
        let exe = std::env::current_exe()
            .map_err(|_| ControlError::WorkerCommandInvalid("current executable unknown"))?;
        let dir = exe.parent().ok_or(ControlError::WorkerCommandInvalid(
            "current executable has no directory",
        ))?;
        Ok(WorkerCommand {
            program: dir.join(format!("aix{}", std::env::consts::EXE_SUFFIX)),
            args: vec!["worker".into(), "--stdio".into()],
        })
    }
}

/// A spawned worker. Dropping it kills the process (`kill_on_drop`) and removes its pid file.
#[derive(Debug)]
pub struct Worker {
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<()>>,
    pid_file: PathBuf,
    exited: Option<ExitStatus>,
}

/// A signal the control plane sends to a worker's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Kill,
}

impl Worker {
    /// Spawns `cmd` in its own process group with `env` added, records its pid in
    /// `run_dir/worker-<run_id>.pid`, and forwards its stderr to `tracing` at debug.
    ///
    /// Errors: the spawn's I/O error (`worker_spawn_failed` for the run).
    pub fn spawn(
        cmd: &WorkerCommand,
        env: &[(String, String)],
        run_dir: &Path,
        run_id: &str,
    ) -> std::io::Result<(Worker, WorkerOutput)> {
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Own group: SIGTERM/SIGKILL reach the worker's children too, and a terminal's ^C
            // reaches only the daemon, which then stops workers in order.
            .process_group(0);
        let mut child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("worker exited before its pid was read"))?;
        let pid_file = run_dir.join(format!("worker-{run_id}.pid"));
        let record = format!("{pid}\n{}\n", cmd.program.display());
        if let Err(e) = write_private(&pid_file, record.as_bytes()) {
            tracing::warn!(run_id, pid, error = %e, "cannot record worker pid");
        }
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("worker stdout not piped"))?;
        let stderr = child.stderr.take().map(|err| {
            let run_id = run_id.to_owned();
            tokio::spawn(async move {
                let mut lines = FramedRead::new(err, LinesCodec::new_with_max_length(16 * 1024));
                while let Some(line) = lines.next().await {
                    match line {
                        Ok(line) => tracing::debug!(run_id = %run_id, pid, %line, "worker stderr"),
                        Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded) => {
                            tracing::debug!(run_id = %run_id, pid, "worker stderr line too long")
                        }
                        Err(_) => break,
                    }
                }
            })
        });
        let worker = Worker {
            pid,
            child,
            stdin,
            stderr,
            pid_file,
            exited: None,
        };
        Ok((worker, Box::pin(stdout)))
    }

    /// Writes one frame line (the newline is added).
    ///
    /// Errors: the pipe's (the worker exited or closed stdin).
    pub async fn send(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        stdin.write_all(&buf).await?;
        stdin.flush().await
    }

    /// Closes the worker's stdin (end of control frames).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Signals the worker's process group. A group already gone is not an error.
    pub fn signal(&self, sig: StopSignal) {
        if self.exited.is_some() {
            return;
        }
        if let Err(e) = signal_group(self.pid, sig) {
            tracing::debug!(pid = self.pid, error = %e, "signal to worker failed");
        }
    }

    /// Waits for the process to exit. Cancel-safe: may be polled again after a timeout.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.exited = Some(status);
        // The worker's own children (same group) must not outlive it.
        let _ = signal_group(self.pid, StopSignal::Kill);
        Ok(status)
    }

    pub fn has_exited(&self) -> bool {
        self.exited.is_some()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = signal_group(self.pid, StopSignal::Kill);
        }
        if let Some(task) = self.stderr.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

fn signal_group(pid: u32, sig: StopSignal) -> std::io::Result<()> {
    let pgid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    if pgid <= 1 {
        return Err(std::io::Error::other("refusing to signal pid <= 1"));
    }
    let sig = match sig {
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Kill => Signal::SIGKILL,
    };
    // The worker leads its own process group (spawned with `process_group(0)`); pgid > 1 was
    // checked so this never addresses "every process".
    killpg(Pid::from_raw(pgid), sig).map_err(std::io::Error::from)
}

/// Writes `bytes` to a new file only its owner can read (0600 whatever the umask).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

/// Kills workers recorded in `run_dir/worker-*.pid` by a daemon that died without stopping
/// them, and removes the records. A pid is killed only when `/proc/<pid>/cmdline` still names
/// the recorded program (a reused pid is left alone). Returns how many were killed.
pub fn reap_orphans(run_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("worker-") && name.ends_with(".pid")) {
            continue;
        }
        if let Some((pid, program)) = read_pid_file(&path)
            && process_runs(pid, &program)
            && signal_group(pid, StopSignal::Kill).is_ok()
        {
            tracing::warn!(pid, "killed an orphaned worker of a previous daemon");
            killed += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    killed
}

fn read_pid_file(path: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    Some((pid, lines.next().unwrap_or_default().to_owned()))
}

/// Whether `pid` is alive and its command line names `program` (Linux `/proc`; elsewhere an
/// orphan cannot be verified and is left alone).
fn process_runs(pid: u32, program: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let wanted = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !wanted.is_empty()
        && cmdline
            .split(|b| *b == 0)
            .take(2)
            .any(|arg| String::from_utf8_lossy(arg).contains(&wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_and_rejects_empty() {
        let c = WorkerCommand::parse("  /bin/aix worker --stdio ").unwrap();
        assert_eq!(c.program, PathBuf::from("/bin/aix"));
        assert_eq!(c.args, vec!["worker", "--stdio"]);
        assert_eq!(
            WorkerCommand::parse("   ").unwrap_err().code(),
            "worker_command_invalid"
        );
    }

    #[tokio::test]
    async fn orphan_with_matching_cmdline_is_killed_and_record_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = WorkerCommand::parse("sleep 30").unwrap();
        let (mut worker, _out) = Worker::spawn(&cmd, &[], dir.path(), "r1").unwrap();
        let pid = worker.pid;
        // Until the child has exec'd, its cmdline is still the test binary's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !process_runs(pid, "sleep") {
            assert!(std::time::Instant::now() < deadline, "sleep never started");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Leave the record as a crashed daemon would, and a stale record for a dead pid.
        std::fs::write(dir.path().join("worker-dead.pid"), "999999\nsleep\n").unwrap();
        assert_eq!(reap_orphans(dir.path()), 1);
        let status = worker.wait().await.unwrap();
        assert!(!status.success());
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || worker.has_exited());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
