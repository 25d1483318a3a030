//! `nex import backfill|tail|stop|restart`: operator controls of the import orchestration.
//! With a daemon running they are requests over its socket; without one, `backfill` and `tail`
//! start the same supervisor and pipeline in this process and run in the foreground.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::control_ctx::{
    ControlArgs, Session, WorkerArgs, duration, errln, fail, outln, print_json, runtime,
    shutdown_signal, table,
};
use super::fmt::{count, or_dash};
use crate::control::api::Stopped;
use crate::control::health::{JobView, RunPhase, StatusReport, TailState, TailStatus};
use crate::control::jobs::{Enqueued, JobRecord, JobStatus};
use crate::control::{Control, ControlError, Request};
use crate::pipeline::CommittedCounters;

#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Wait for the job to end, with a progress bar and a summary (always so without a
    /// daemon).
    #[arg(long)]
    pub wait: bool,
    /// Re-read every source file from the start, ignoring stored cursors.
    #[arg(long)]
    pub full: bool,
    /// Print JSON: the enqueued job, or with --wait the final job record.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Without a daemon: one tail run, not restarted when it ends (Ctrl-C stops it).
    #[arg(long)]
    pub once: bool,
    /// Print the tail status as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// `tail` (default) or a job id (a unique prefix of at least 4 characters is enough).
    #[arg(value_name = "tail|JOB_ID")]
    pub target: Option<String>,
    /// Print `{"stopped":"tail","tail":…}` or `{"stopped":"job","job":…}` (docs/control.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Print the tail status as JSON (`TailStatus`, docs/control.md).
    #[arg(long)]
    pub json: bool,
}

fn block_on<F: std::future::Future<Output = Result<ExitCode, ControlError>>>(f: F) -> ExitCode {
    match runtime() {
        Ok(rt) => rt.block_on(f).unwrap_or_else(|e| fail(&e)),
        Err(code) => code,
    }
}

/// `nex import backfill`.
pub fn backfill(args: BackfillArgs) -> ExitCode {
    block_on(async move {
        let control = args.control.with_worker(&args.worker);
        let mut session = Session::daemon_or_local(&control).await?;
        let result = backfill_in(&mut session, &args).await;
        session.finish().await;
        result
    })
}

async fn backfill_in(session: &mut Session, args: &BackfillArgs) -> Result<ExitCode, ControlError> {
    let enq: Enqueued = session
        .control
        .call(Request::Backfill { full: args.full })
        .await?;
    let wait = args.wait || session.is_local();
    if !wait {
        if args.json {
            print_json(&enq);
        } else if enq.created {
            outln!("backfill job {} queued", enq.job.id);
        } else {
            outln!(
                "backfill job {} already {}; not starting another",
                enq.job.id,
                enq.job.status
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !enq.created && !args.json {
        errln!("waiting for the active backfill job {}", enq.job.id);
    }
    let local = session.is_local();
    let job = wait_job(&mut session.control, &enq.job.id, !args.json, local).await?;
    let Some(job) = job else {
        // Interrupted: in-process, the job is marked and resumes at the next start.
        if !args.json {
            errln!(
                "interrupted; job {} {}",
                enq.job.id,
                if local {
                    "will resume at the next backfill or daemon start"
                } else {
                    "continues in the daemon"
                }
            );
        }
        return Ok(ExitCode::from(130));
    };
    if args.json {
        print_json(&job);
    } else {
        outln!("{}", job_summary(&job));
        let c = &job.stats.counters;
        if job.status == JobStatus::Completed
            && files_checked(c).unwrap_or(0) == 0
            && c.items() == 0
        {
            // Found nothing: say where, so a wrong location is seen at once.
            if local && let Ok(settings) = args.control.with_worker(&args.worker).settings(false) {
                outln!("looked in:");
                for line in super::doctor::where_it_looks(&settings) {
                    outln!("{line}");
                }
            } else {
                outln!("no sessions found: `nex doctor` shows where the worker looks");
            }
        }
    }
    Ok(match job.status {
        JobStatus::Completed => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Polls the job until it ends (`Some(final record)`) or SIGINT/SIGTERM (`None`), drawing a
/// progress bar on stderr when `bar`.
async fn wait_job(
    control: &mut Control,
    id: &str,
    bar: bool,
    local: bool,
) -> Result<Option<JobRecord>, ControlError> {
    let pb = if bar {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} session files and store sessions read, ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let outcome = loop {
        tokio::select! {
            _ = &mut signal => break None,
            _ = tick.tick() => {}
        }
        let view: JobView = control.call(Request::Job { id: id.to_owned() }).await?;
        let c = view
            .run
            .as_ref()
            .map(|r| &r.counters)
            .unwrap_or(&view.job.stats.counters);
        if let Some(total) = c.total {
            pb.set_length(total);
        }
        pb.set_position(c.emitted.unwrap_or(0));
        let job_c = &view.job.stats.counters;
        pb.set_message(format!(
            "{} imported, {} upserted, {} skipped, {} failed{}{}",
            job_c.imported,
            job_c.upserted,
            job_c.skipped,
            failed_total(job_c),
            retracted_words(job_c),
            match view.next_retry_in_ms {
                Some(ms) => format!(" (retry in {})", duration(ms as i64)),
                None => String::new(),
            }
        ));
        if !view.job.status.is_active() {
            break Some(view.job);
        }
    };
    pb.finish_and_clear();
    if outcome.is_none() && local {
        // The caller's `finish` stops the in-process plane gracefully.
        tracing::info!(job_id = id, "backfill interrupted");
    }
    Ok(outcome)
}

/// Items and source files that failed: the FAILED figure of the tables and lines.
pub fn failed_total(c: &CommittedCounters) -> u64 {
    c.failed + c.failed_files
}

/// `", N retracted"` when retract items deleted sessions (item rule 15), else nothing: the
/// counts lines name every kind of write.
pub fn retracted_words(c: &CommittedCounters) -> String {
    if c.retracted == 0 {
        return String::new();
    }
    format!(", {} retracted", c.retracted)
}

/// What a run or a job could not read, or read only after repairing bytes: one indented line
/// each, empty when nothing. Paths and OS reasons, never content.
pub fn source_problems(c: &CommittedCounters) -> Vec<String> {
    let mut lines: Vec<String> = c
        .file_errors
        .iter()
        .map(|e| format!("  {} {}: {}", e.code, e.path, e.message))
        .collect();
    let unnamed = c.failed_files.saturating_sub(c.file_errors.len() as u64);
    if unnamed > 0 {
        lines.push(format!("  and {unnamed} more unreadable files"));
    }
    if c.lossy_lines > 0 {
        lines.push(format!(
            "  {} lines imported with damaged bytes replaced (lossy_lines)",
            c.lossy_lines
        ));
    }
    lines
}

/// Source files the run looked at: those it read plus those unchanged since their cursor, a
/// polled store (a Cursor database, an OpenCode data directory) counting as one file however
/// many sessions it holds; `None` when the worker did not say.
pub fn files_checked(c: &CommittedCounters) -> Option<u64> {
    c.total.map(|t| {
        (t + c.unchanged_files + c.stores.stores)
            .saturating_sub(c.stores.sessions + c.stores.sessions_unchanged)
    })
}

/// Source files found unchanged since their cursor, a store counting as one (unchanged when
/// none of its sessions changed).
fn files_unchanged(c: &CommittedCounters) -> u64 {
    (c.unchanged_files + c.stores.stores_unchanged).saturating_sub(c.stores.sessions_unchanged)
}

/// Source files read, a store counting as one.
fn files_read(c: &CommittedCounters) -> Option<u64> {
    let stores_read = c.stores.stores.saturating_sub(c.stores.stores_unchanged);
    c.emitted
        .map(|e| (e + stores_read).saturating_sub(c.stores.sessions))
}

/// `; Cursor and OpenCode: 2 stores holding 31 sessions (3 changed)`, empty without stores.
fn store_words(c: &CommittedCounters) -> String {
    let s = &c.stores;
    if s.stores == 0 {
        return String::new();
    }
    format!(
        "; Cursor and OpenCode: {} holding {} ({} read)",
        count(s.stores, "store", "stores"),
        count(s.sessions + s.sessions_unchanged, "session", "sessions"),
        s.sessions
    )
}

/// The end-of-job summary: a line in words, then the table. A run that changed nothing says
/// so (`nothing new: 66 files checked, 66 unchanged`), with the table of what it checked.
pub fn job_summary(job: &JobRecord) -> String {
    let c = &job.stats.counters;
    let took = match (job.started_at, job.completed_at) {
        (Some(s), Some(e)) => format!(" in {}", duration(e - s)),
        _ => String::new(),
    };
    let mut out = format!(
        "backfill job {} {}{} ({})",
        job.id,
        job.status,
        took,
        count(u64::from(job.stats.attempts), "attempt", "attempts")
    );
    if let Some(code) = &job.error_code {
        let why = job.error_message.as_deref().unwrap_or("");
        out.push_str(&format!("\nerror: {why} [{code}]"));
    }
    let files = files_checked(c);
    let wrote = c.imported + c.upserted + c.retracted;
    let nothing_new =
        job.status == JobStatus::Completed && wrote == 0 && failed_total(c) == 0 && c.rejected == 0;
    out.push('\n');
    if nothing_new && files == Some(0) && c.items() == 0 {
        out.push_str("found no session files or databases to import");
    } else if nothing_new {
        let checked = files.map_or_else(|| "- files".to_owned(), |n| count(n, "file", "files"));
        let unchanged = files_unchanged(c);
        let read = files_read(c).unwrap_or(0);
        out.push_str(&format!("nothing new: {checked} checked"));
        // A `--full` run (or files touched but not changed) reads them: "0 unchanged" alone
        // would read as if every file had changed.
        if unchanged > 0 || read == 0 {
            out.push_str(&format!(", {unchanged} unchanged since the last import"));
        }
        if read > 0 {
            out.push_str(&format!(", {read} read again"));
        }
        out.push_str(&store_words(c));
        if c.skipped + c.replayed > 0 {
            out.push_str(&format!(
                "; {} read again and already in the ledger",
                count(c.skipped + c.replayed, "session", "sessions")
            ));
        }
        out.push('\n');
        let mut header = vec!["FILES", "UNCHANGED"];
        let mut row = vec![or_dash(files), unchanged.to_string()];
        if read > 0 {
            header.push("READ");
            row.push(read.to_string());
        }
        if c.skipped > 0 {
            header.push("SKIPPED");
            row.push(c.skipped.to_string());
        }
        if c.replayed > 0 {
            header.push("REPLAYED");
            row.push(c.replayed.to_string());
        }
        out.push_str(&table(&header, &[row]));
    } else {
        if c.stores.stores > 0 {
            out.push_str(&format!("{}\n", store_words(c).trim_start_matches("; ")));
        }
        let mut row = vec![
            or_dash(files),
            files_unchanged(c).to_string(),
            or_dash(files_read(c)),
            c.imported.to_string(),
            c.upserted.to_string(),
            c.skipped.to_string(),
            c.replayed.to_string(),
            failed_total(c).to_string(),
            c.rejected.to_string(),
        ];
        let mut header = vec![
            "FILES",
            "UNCHANGED",
            "READ",
            "IMPORTED",
            "UPSERTED",
            "SKIPPED",
            "REPLAYED",
            "FAILED",
            "REJECTED",
        ];
        // Sessions deleted by retract items (item rule 15): a column only when there are some.
        if c.retracted > 0 {
            header.push("RETRACTED");
            row.push(c.retracted.to_string());
        }
        out.push_str(&table(&header, &[row]));
    }
    for line in source_problems(c) {
        out.push('\n');
        out.push_str(&line);
    }
    out
}

/// `nex import tail`.
pub fn tail(args: TailArgs) -> ExitCode {
    block_on(async move {
        let control = args.control.with_worker(&args.worker);
        let mut session = Session::daemon_or_local(&control).await?;
        let result = tail_in(&mut session, &args).await;
        session.finish().await;
        result
    })
}

async fn tail_in(session: &mut Session, args: &TailArgs) -> Result<ExitCode, ControlError> {
    let once = args.once && session.is_local();
    let status: TailStatus = session.control.call(Request::Tail { once }).await?;
    if !session.is_local() {
        if args.json {
            print_json(&status);
        } else {
            outln!("tail {}", tail_line(&status));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        errln!("tailing in the foreground (no daemon running); Ctrl-C stops");
    }
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last: Option<TailStatus> = None;
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = tick.tick() => {}
        }
        let st: StatusReport = session.control.call(Request::Status).await?;
        let ended = matches!(st.tail.state, TailState::Stopped | TailState::Error);
        last = Some(st.tail);
        if ended {
            break;
        }
    }
    let last = last.unwrap_or(status);
    if args.json {
        print_json(&last);
    } else {
        outln!("tail {}", tail_line(&last));
    }
    Ok(match last.state {
        TailState::Error => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// One line about the tail.
pub fn tail_line(t: &TailStatus) -> String {
    let mut s = format!("{}", serde_json::to_value(t.state).unwrap_or_default())
        .trim_matches('"')
        .to_owned();
    if let Some(run) = &t.run {
        // Health describes a running worker; one starting or stopping shows its phase (a
        // stopping worker is never "healthy").
        let condition = match run.phase {
            RunPhase::Running => serde_json::to_value(run.health),
            phase => serde_json::to_value(phase),
        };
        s.push_str(&format!(
            " (pid {}, {}, {} imported, {} upserted, {} skipped, {} failed{})",
            run.pid.map_or("-".into(), |p| p.to_string()),
            condition
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            run.counters.imported,
            run.counters.upserted,
            run.counters.skipped,
            failed_total(&run.counters),
            retracted_words(&run.counters)
        ));
    }
    if t.restarts > 0 {
        s.push_str(&format!(", restarts {}", t.restarts));
    }
    if let Some(ms) = t.next_restart_in_ms {
        s.push_str(&format!(", next restart in {}", duration(ms as i64)));
    }
    if let Some(e) = &t.last_error {
        s.push_str(&format!(", last error {e}"));
    }
    s
}

/// `nex import stop [tail|JOB_ID]`: needs a daemon.
pub fn stop(args: StopArgs) -> ExitCode {
    block_on(async move {
        let paths = args.control.paths()?;
        let mut control = Session::daemon(&args.control)
            .await?
            .ok_or(ControlError::DaemonNotRunning(paths.socket))?;
        let stopped: Stopped = control
            .call(Request::Stop {
                target: args.target.clone(),
            })
            .await?;
        if args.json {
            print_json(&stopped);
        } else {
            match &stopped {
                Stopped::Tail { tail } => outln!("tail {}", tail_line(tail)),
                Stopped::Job { job } if job.status.is_active() => {
                    outln!("job {} cancelling", job.id)
                }
                Stopped::Job { job } => outln!("job {} {}", job.id, job.status),
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `nex import restart`: needs a daemon.
pub fn restart(args: RestartArgs) -> ExitCode {
    block_on(async move {
        let paths = args.control.paths()?;
        let mut control = Session::daemon(&args.control)
            .await?
            .ok_or(ControlError::DaemonNotRunning(paths.socket))?;
        let tail: TailStatus = control.call(Request::Restart).await?;
        if args.json {
            print_json(&tail);
        } else {
            outln!("tail {}", tail_line(&tail));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Shared by `status`: a one-line view of a job.
pub fn job_line(v: &JobView) -> String {
    let c = &v.job.stats.counters;
    let mut s = format!(
        "job {} {} attempt {}: {}/{} session files and store sessions read, {} imported, {} upserted, {} skipped, {} failed{}",
        v.job.id,
        v.job.status,
        v.job.stats.attempts,
        c.emitted.unwrap_or(0),
        c.total.map_or("?".into(), |t| t.to_string()),
        c.imported,
        c.upserted,
        c.skipped,
        failed_total(c),
        retracted_words(c)
    );
    if let Some(ms) = v.next_retry_in_ms {
        s.push_str(&format!(", retry in {}", duration(ms as i64)));
    }
    s
}

/// `nex import watch`: the daemon's bus events, one JSON line each, until Ctrl-C.
pub fn watch(args: WatchArgs) -> ExitCode {
    block_on(async move {
        let paths = args.control.paths()?;
        let mut client = crate::control::ControlClient::connect(&paths.socket)
            .await?
            .ok_or_else(|| ControlError::DaemonNotRunning(paths.socket.clone()))?;
        let ack = client.request(&Request::Watch).await?;
        let _: serde_json::Value = ack.into_result()?;
        let signal = shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => break,
                line = client.next_line() => match line {
                    Some(line) => outln!("{line}"),
                    None => break,
                },
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
