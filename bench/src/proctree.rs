//! Accounting of a process TREE from `/proc` (Linux): a daemon and whatever it spawned, or a
//! peer tool and its children. CPU time (`utime + stime + cutime + cstime` of
//! `/proc/<pid>/stat`), on-CPU nanoseconds of live threads (`/proc/<pid>/task/*/schedstat`),
//! resident and peak resident sets (`VmRSS`, `VmHWM`), and a sampler of the tree's peaks.
//!
//! The CPU sum of a tree is exact across exits as long as each process is reaped by its parent
//! inside the tree: a reaped child's whole CPU time moves into its parent's `cutime`/`cstime`.
//! So `cpu(end) - cpu(start)` over the live tree at each end counts every process that ran in
//! between, including a worker that exited and was replaced.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One process' CPU counters, in clock ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCpu {
    pub pid: u32,
    pub ppid: u32,
    /// The kernel's command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// User and system time of the process' own threads (live and exited).
    pub own_ticks: u64,
    /// User and system time of its reaped children (`cutime + cstime`).
    pub children_ticks: u64,
}

impl ProcCpu {
    pub fn total_ticks(&self) -> u64 {
        self.own_ticks + self.children_ticks
    }
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone or the line does not parse.
pub fn proc_cpu(pid: u32) -> Option<ProcCpu> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After comm: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    Some(ProcCpu {
        pid,
        ppid: u32::try_from(field(4)?).ok()?,
        comm,
        own_ticks: field(14)? + field(15)?,
        children_ticks: field(16)? + field(17)?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, the Linux value, when that fails).
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `root` and every live descendant (one scan of `/proc`), root first, then by pid.
pub fn tree(root: u32) -> Vec<ProcCpu> {
    let Some(root_cpu) = proc_cpu(root) else {
        return Vec::new();
    };
    let mut by_parent: HashMap<u32, Vec<ProcCpu>> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == root {
                continue;
            }
            if let Some(p) = proc_cpu(pid) {
                by_parent.entry(p.ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![root_cpu];
    let mut i = 0;
    while i < out.len() {
        let pid = out[i].pid;
        if let Some(mut kids) = by_parent.remove(&pid) {
            kids.sort_by_key(|k| k.pid);
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// A `VmXxx:` line of `/proc/<pid>/status`, KiB.
pub fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// On-CPU nanoseconds of each live thread of `pid` (`/proc/<pid>/task/<tid>/schedstat`, first
/// field), keyed by thread id. Empty when the kernel has no schedstat.
pub fn thread_run_ns(pid: u32) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let ns = std::fs::read_to_string(e.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        if let Some(ns) = ns {
            out.insert(tid, ns);
        }
    }
    out
}

/// Follows the on-CPU time of every thread of a tree between samples: for each `(pid, tid)`,
/// the last value seen minus the first. A thread that lives between two samples only is missed
/// (the tick-based sum is the authoritative figure; this one has nanosecond resolution).
#[derive(Debug, Default)]
pub struct RunNsTracker {
    threads: HashMap<(u32, u32), (u64, u64)>,
}

impl RunNsTracker {
    /// Records the current values of every thread of `pids`.
    pub fn sample(&mut self, pids: impl IntoIterator<Item = u32>) {
        for pid in pids {
            for (tid, ns) in thread_run_ns(pid) {
                self.threads
                    .entry((pid, tid))
                    .and_modify(|(_, last)| *last = ns)
                    .or_insert((ns, ns));
            }
        }
    }

    /// Nanoseconds on CPU since the first sample, per pid.
    pub fn per_pid(&self) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        for (&(pid, _), &(first, last)) in &self.threads {
            *out.entry(pid).or_insert(0) += last.saturating_sub(first);
        }
        out
    }
}

/// Samples the peak resident set (`VmHWM`) of a tree every 20 ms (its members re-listed every
/// 100 ms) until finished or dropped. Peaks are kept per command name: the sum of the
/// processes' peaks is what the tree can hold at once at most.
pub struct TreeHwm {
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<BTreeMap<u32, (String, u64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TreeHwm {
    pub fn start(root: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks: Arc<Mutex<BTreeMap<u32, (String, u64)>>> = Arc::default();
        let (s, p) = (stop.clone(), peaks.clone());
        let thread = std::thread::Builder::new()
            .name("tree-hwm".into())
            .spawn(move || {
                let mut members: Vec<(u32, String)> = vec![(root, String::new())];
                let mut round = 0u64;
                while !s.load(Ordering::Relaxed) {
                    if round.is_multiple_of(5) {
                        let t = tree(root);
                        if !t.is_empty() {
                            members = t.into_iter().map(|c| (c.pid, c.comm)).collect();
                        }
                    }
                    round += 1;
                    for (pid, comm) in &members {
                        if let Some(kib) = vm_kib(*pid, "VmHWM") {
                            let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
                            let e = g.entry(*pid).or_insert_with(|| (comm.clone(), 0));
                            e.1 = e.1.max(kib);
                            if !comm.is_empty() {
                                e.0.clone_from(comm);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .ok();
        Self {
            stop,
            peaks,
            thread,
        }
    }

    /// Stops sampling; the highest peak seen per command name (KiB), e.g. `{"nex": …, "aix": …}`.
    pub fn finish(mut self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let g = self.peaks.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for (comm, kib) in g.values() {
            let e = out.entry(comm.clone()).or_insert(0);
            *e = (*e).max(*kib);
        }
        out
    }
}

impl Drop for TreeHwm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_parses_and_is_the_tree_root() {
        let me = std::process::id();
        let cpu = proc_cpu(me).unwrap();
        assert_eq!(cpu.pid, me);
        assert!(!cpu.comm.is_empty());
        let t = tree(me);
        assert_eq!(t.first().map(|c| c.pid), Some(me));
        assert!(vm_kib(me, "VmHWM").unwrap() > 0);
        assert!(!thread_run_ns(me).is_empty());
    }

    #[test]
    fn run_ns_tracker_sees_a_busy_thread() {
        let me = std::process::id();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let spin = std::thread::spawn(move || {
            let mut x = 0u64;
            while !s.load(Ordering::Relaxed) {
                x = x.wrapping_add(1);
            }
            x
        });
        // The thread is sampled while it runs (one living between two samples only is missed).
        std::thread::sleep(Duration::from_millis(20));
        let mut t = RunNsTracker::default();
        t.sample([me]);
        std::thread::sleep(Duration::from_millis(200));
        t.sample([me]);
        stop.store(true, Ordering::Relaxed);
        let _ = spin.join();
        let ns = t.per_pid().get(&me).copied().unwrap_or(0);
        assert!(ns >= 10_000_000, "{ns} ns on CPU");
    }

    #[test]
    fn a_child_is_in_the_tree_and_gone_pids_read_none() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let t = tree(std::process::id());
        assert!(t.iter().any(|c| c.pid == child.id() && c.comm == "sleep"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(proc_cpu(child.id()), None);
    }
}
