//! Control-plane settings: where the files live, which worker to spawn, how long to wait, how to
//! restart. Resolved once at start from flags > environment > `$NEX_HOME/config.toml` >
//! defaults, so that every later decision is deterministic.
//!
//! Layout: this file the paths, timings and the resolution; the sections of `config.toml` in
//! `import`, `prices` and `replica`, its strict keys' typo hints in `keys`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ControlError;
use super::policy::RestartPolicy;
use super::worker::WorkerCommand;

mod import;
mod keys;
mod prices;
mod replica;

pub use import::{ImportSection, WorkerCmdSpec};
use keys::unknown;
pub use replica::ReplicaSection;

/// Persona used when neither a flag nor the config names one (seed: persona optional,
/// deterministic default).
pub const DEFAULT_PERSONA: &str = "main";

/// Files of one `NEX_HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub home: PathBuf,
    /// The agents ledger (`agents.db`), or `NEX_LEDGER`.
    pub ledger: PathBuf,
    /// The runtime database holding `import_jobs` and `import_runs`.
    pub nexus: PathBuf,
    /// `0700` directory for the socket and the worker pid files.
    pub run_dir: PathBuf,
    pub socket: PathBuf,
    pub config_file: PathBuf,
}

impl Paths {
    /// Paths under `home`; `ledger` overrides the agents ledger location.
    pub fn under(home: &Path, ledger: Option<PathBuf>) -> Paths {
        let run_dir = home.join("run");
        Paths {
            home: home.to_path_buf(),
            ledger: ledger.unwrap_or_else(|| home.join("agents.db")),
            nexus: home.join("nexus.db"),
            socket: run_dir.join("nex.sock"),
            run_dir,
            config_file: home.join("config.toml"),
        }
    }

    /// `home` flag > `NEX_HOME` > `~/.nex`; `ledger` flag > `NEX_LEDGER` > config > `home/agents.db`.
    ///
    /// Errors: `nex_home_unresolved` when no flag, no `NEX_HOME` and no `HOME` exist.
    pub fn resolve(home: Option<PathBuf>) -> Result<Paths, ControlError> {
        let home = match home.or_else(|| env_path("NEX_HOME")) {
            Some(h) => h,
            None => env_path("HOME")
                .map(|h| h.join(".nex"))
                .ok_or(ControlError::HomeUnresolved)?,
        };
        check_home(&home)?;
        Ok(Paths::under(&home, env_path("NEX_LEDGER")))
    }
}

/// A `NEX_HOME` that exists must be a directory we can list (an absent one is created when
/// first needed); otherwise every later error would name a file inside it instead.
///
/// Errors: `nex_home_invalid` with the OS reason.
fn check_home(home: &Path) -> Result<(), ControlError> {
    let invalid = |source| ControlError::HomeInvalid {
        path: home.to_path_buf(),
        source,
    };
    match std::fs::metadata(home) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(invalid(e)),
        Ok(m) if m.is_dir() => std::fs::read_dir(home).map(drop).map_err(invalid),
        Ok(_) => Err(invalid(std::fs::read_dir(home).err().unwrap_or_else(
            || std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ))),
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Every wait of the control plane. Defaults follow the adapter system (baseline.md §5) and
/// PROTOCOL.md; tests shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    /// Probe interval while the worker is healthy.
    pub probe_healthy: Duration,
    /// Probe interval while the worker answers but is behind (`degraded`).
    pub probe_degraded: Duration,
    /// Probe interval while the worker says `connected: false`, or before its first answer.
    pub probe_disconnected: Duration,
    /// A probe not answered (by any frame) within this ends the run `worker_unresponsive`.
    pub health_timeout: Duration,
    /// The first frame after `run.start` must arrive within this.
    pub start_timeout: Duration,
    /// How long an unanswered probe is excused while the pipeline has unfinished lines (a busy
    /// ledger: the answer waits in the pipe). Longer than the ledger writer's own busy limit
    /// (120 s), so the writer's `ledger_busy` ends a stuck run first.
    pub backlog_wait: Duration,
    /// After `run.stop` (or a terminal frame) the worker has this long to exit before SIGTERM.
    pub stop_grace: Duration,
    /// After SIGTERM the worker has this long before SIGKILL.
    pub kill_after: Duration,
    /// Whole-daemon shutdown deadline; stragglers are aborted with `shutdown_timeout`.
    pub shutdown_grace: Duration,
    /// A worker reporting a lag above this is `degraded`.
    pub stale_after: Duration,
    /// `stats_json` of a running job is rewritten at most this often.
    pub stats_every: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            probe_healthy: Duration::from_secs(60),
            probe_degraded: Duration::from_secs(15),
            probe_disconnected: Duration::from_secs(10),
            health_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(10),
            backlog_wait: Duration::from_secs(150),
            stop_grace: Duration::from_secs(5),
            kill_after: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            stale_after: Duration::from_secs(300),
            stats_every: Duration::from_secs(1),
        }
    }
}

/// Where the worker finds the agents' data. Claude Code and Codex travel as the worker's
/// environment (`CLAUDE_CONFIG_DIR`, `CODEX_HOME`); the others in `run.start.options`
/// (`cursorDbs`, `opencodeDirs`, `geminiDirs`). Unset: the worker's own defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRoots {
    pub claude_config_dir: Option<String>,
    pub codex_home: Option<String>,
    /// Cursor's `state.vscdb` (e.g. a Windows Cursor's, seen from WSL under `/mnt/c`).
    pub cursor_db: Option<String>,
    /// OpenCode's data directory.
    pub opencode_dir: Option<String>,
    /// Gemini CLI's `tmp` directory.
    pub gemini_dir: Option<String>,
    /// Locations given on the command line (`--claude-dir`, `--codex-dir`, `--cursor-db`,
    /// `--opencode-dir`, `--gemini-dir`, repeatable, already located): each provider's list,
    /// when not empty, replaces that provider's other settings (`run.start.options`).
    pub given: crate::aix::RootOverrides,
}

/// Resolved settings of a control plane.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    pub paths: Paths,
    /// Persona handed to every run: flag > config > `main`.
    pub persona: String,
    /// Rollback switch (seed "Rollback Strategy"): false keeps the daemon up with no import
    /// orchestration at all.
    pub import_enabled: bool,
    /// Start the tail when the daemon starts.
    pub start_tail: bool,
    /// Re-enqueue a job found `running` at start (marked `failed` / `daemon_restarted`).
    pub auto_retry: bool,
    pub worker: WorkerCommand,
    pub sources: SourceRoots,
    pub timings: Timings,
    /// Tail restarts.
    pub restart: RestartPolicy,
    /// Retries of a backfill job's failed run (retryable failures only).
    pub job_retry: RestartPolicy,
    /// Open the agents ledger even when it is a symbolic link (`--allow-symlinked-ledger`).
    pub allow_symlinked_ledger: bool,
    /// The shared PostgreSQL the daemon replicates the ledger into; `None`: no replication.
    pub replica: Option<crate::replica::ReplicaSettings>,
}

impl ControlSettings {
    /// Settings with every default under `paths`, spawning `worker`.
    pub fn new(paths: Paths, worker: WorkerCommand) -> ControlSettings {
        ControlSettings {
            paths,
            persona: DEFAULT_PERSONA.to_owned(),
            import_enabled: true,
            start_tail: true,
            auto_retry: true,
            worker,
            sources: SourceRoots::default(),
            timings: Timings::default(),
            restart: RestartPolicy::default(),
            job_retry: RestartPolicy::job_default(),
            allow_symlinked_ledger: false,
            replica: None,
        }
    }

    /// Reads `$NEX_HOME/config.toml` (absent is fine) and the environment, then applies
    /// `overrides` (flags).
    ///
    /// Errors: `config_invalid` when the file exists but does not parse; `config_unreadable`
    /// when it cannot be read.
    pub fn load(paths: Paths, overrides: &Overrides) -> Result<ControlSettings, ControlError> {
        let file = ConfigFile::read(&paths.config_file)?;
        let mut paths = paths;
        if std::env::var_os("NEX_LEDGER").is_none_or(|v| v.is_empty())
            && let Some(ledger) = &file.ledger
        {
            paths.ledger = paths.home.join(ledger);
        }
        let worker = match (&overrides.worker_cmd, env_string("NEX_WORKER_CMD")) {
            (Some(cmd), _) => WorkerCommand::parse(cmd)?,
            (None, Some(cmd)) => WorkerCommand::parse(&cmd)?,
            (None, None) => match &file.import.worker_cmd {
                Some(cmd) => cmd.to_command()?,
                None => WorkerCommand::default_aix()?,
            },
        };
        let mut s = ControlSettings::new(paths, worker);
        s.allow_symlinked_ledger = overrides.allow_symlinked_ledger;
        s.persona = overrides
            .persona
            .clone()
            .or(file.persona.clone())
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PERSONA.to_owned());
        let imp = &file.import;
        s.import_enabled = imp.enabled.unwrap_or(true) && !overrides.no_import;
        s.start_tail = imp.tail.unwrap_or(true);
        s.auto_retry = imp.auto_retry.unwrap_or(true);
        s.sources = SourceRoots {
            claude_config_dir: overrides
                .claude_config_dir
                .clone()
                .or_else(|| env_string("CLAUDE_CONFIG_DIR"))
                .or(imp.claude_config_dir.clone()),
            codex_home: overrides
                .codex_home
                .clone()
                .or_else(|| env_string("CODEX_HOME"))
                .or(imp.codex_home.clone()),
            cursor_db: overrides.cursor_db.clone().or(imp.cursor_db.clone()),
            opencode_dir: overrides.opencode_dir.clone().or(imp.opencode_dir.clone()),
            gemini_dir: overrides.gemini_dir.clone().or(imp.gemini_dir.clone()),
            given: overrides.roots.clone(),
        };
        let t = &mut s.timings;
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
        t.probe_healthy = ms(imp.probe_healthy_ms, t.probe_healthy);
        t.probe_degraded = ms(imp.probe_degraded_ms, t.probe_degraded);
        t.probe_disconnected = ms(imp.probe_disconnected_ms, t.probe_disconnected);
        t.health_timeout = ms(imp.health_timeout_ms, t.health_timeout);
        t.start_timeout = ms(imp.start_timeout_ms, t.start_timeout);
        t.stop_grace = ms(imp.stop_grace_ms, t.stop_grace);
        t.shutdown_grace = ms(imp.shutdown_grace_ms, t.shutdown_grace);
        let r = &mut s.restart;
        r.max_restarts = imp.max_restarts.unwrap_or(r.max_restarts);
        r.base = ms(imp.backoff_base_ms, r.base);
        r.max = ms(imp.backoff_max_ms, r.max);
        r.reset_after = ms(imp.reset_after_ms, r.reset_after);
        s.job_retry.max_restarts = imp.job_max_retries.unwrap_or(s.job_retry.max_restarts);
        s.replica = file.replica.resolve(&s.paths.config_file)?;
        Ok(s)
    }
}

fn env_string(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Command-line overrides; `None` leaves the environment/config/default in place.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub persona: Option<String>,
    pub worker_cmd: Option<String>,
    pub claude_config_dir: Option<String>,
    pub codex_home: Option<String>,
    pub cursor_db: Option<String>,
    pub opencode_dir: Option<String>,
    pub gemini_dir: Option<String>,
    /// The repeatable source flags, located ([`crate::aix::locate`]).
    pub roots: crate::aix::RootOverrides,
    /// `nex daemon --no-import`.
    pub no_import: bool,
    /// `--allow-symlinked-ledger`.
    pub allow_symlinked_ledger: bool,
}

/// `$NEX_HOME/config.toml`. Every key is optional.
///
/// ```toml
/// persona = "main"
/// ledger = "agents.db"            # relative to NEX_HOME
/// [import]
/// enabled = true                  # false: rollback switch, no orchestration
/// tail = true                     # start the tail with the daemon
/// auto_retry = true
/// worker_cmd = ["aix", "worker", "--stdio"]   # or one string, split on whitespace
/// claude_config_dir = "/home/u/.claude"
/// codex_home = "/home/u/.codex"
/// cursor_db = "/mnt/c/Users/u/AppData/Roaming/Cursor/User/globalStorage/state.vscdb"
/// opencode_dir = "/home/u/.local/share/opencode"
/// gemini_dir = "/home/u/.gemini/tmp"
/// [prices."claude-sonnet-4-5"]       # USD per million tokens (`nex usage`)
/// input = 3.0
/// output = 15.0
/// cache_read = 0.3                # default: input
/// cache_write = 3.75              # default: input
/// [replica]
/// url = "postgres://nex@db.example.org/team?sslmode=require"   # or NEX_REPLICA_URL
/// machine = "laptop"              # default: the host name
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConfigFile {
    pub persona: Option<String>,
    pub ledger: Option<PathBuf>,
    pub import: ImportSection,
    /// Model prices overriding or adding to the repository's table (`prices.toml`), by model
    /// name (matched as `crate::query::prices` describes).
    pub prices: std::collections::BTreeMap<String, crate::query::prices::PriceOverride>,
    pub replica: ReplicaSection,
}

impl ConfigFile {
    /// A missing file is the empty config.
    pub fn read(path: &Path) -> Result<ConfigFile, ControlError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(source) => {
                return Err(ControlError::ConfigUnreadable {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let invalid = |detail: String| ControlError::ConfigInvalid {
            path: path.to_path_buf(),
            detail,
        };
        // toml's message names the key and line, never secrets we hold.
        let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.message().into()))?;
        check_keys(&table).map_err(invalid)?;
        let file: ConfigFile = table
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.message().into()))?;
        file.import.check_ranges().map_err(invalid)?;
        prices::check_values(&file.prices).map_err(invalid)?;
        Ok(file)
    }
}

/// Keys of the top level of `config.toml`.
const TOP_KEYS: &[&str] = &["persona", "ledger", "import", "prices", "replica"];

/// An unknown key is an error, not a default: a typo in the rollback switch
/// (`[import] enable = false`) must not leave imports running.
fn check_keys(table: &toml::Table) -> Result<(), String> {
    for (key, value) in table {
        if !TOP_KEYS.contains(&key.as_str()) {
            return Err(unknown(key, "", TOP_KEYS));
        }
        if key == "import"
            && let Some(section) = value.as_table()
        {
            import::check_keys(section)?;
        }
        if key == "prices" {
            prices::check_keys(value)?;
        }
        if key == "replica"
            && let Some(section) = value.as_table()
        {
            replica::check_keys(section)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_parses_both_worker_cmd_forms() {
        let f: ConfigFile =
            toml::from_str("persona = \"p\"\n[import]\nworker_cmd = \"a b  c\"\nenabled = false\n")
                .unwrap();
        assert_eq!(f.persona.as_deref(), Some("p"));
        assert_eq!(f.import.enabled, Some(false));
        let cmd = f.import.worker_cmd.unwrap().to_command().unwrap();
        assert_eq!(cmd.program, PathBuf::from("a"));
        assert_eq!(cmd.args, vec!["b", "c"]);
        let f: ConfigFile = toml::from_str("[import]\nworker_cmd = [\"x y\", \"z\"]\n").unwrap();
        let cmd = f.import.worker_cmd.unwrap().to_command().unwrap();
        assert_eq!(cmd.program, PathBuf::from("x y"));
        assert_eq!(cmd.args, vec!["z"]);
    }

    pub(super) fn read_config(text: &str) -> Result<ConfigFile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        ConfigFile::read(&path).map_err(|e| {
            assert_eq!(e.code(), "config_invalid");
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            msg
        })
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_closest_known_key() {
        let e = read_config("[import]\nenable = false\n").unwrap_err();
        assert!(
            e.contains("unknown key `import.enable` (did you mean `import.enabled`?)"),
            "{e}"
        );
        let e = read_config("persna = \"x\"\n").unwrap_err();
        assert!(
            e.contains("unknown key `persna` (did you mean `persona`?)"),
            "{e}"
        );
        let e = read_config("[import]\nzzzzzz = 1\n").unwrap_err();
        assert!(
            e.contains("unknown key `import.zzzzzz`") && !e.contains("mean"),
            "{e}"
        );
        let e = read_config("[imports]\nenabled = false\n").unwrap_err();
        assert!(e.contains("did you mean `import`?"), "{e}");
        // Every known key is accepted.
        let all: String = import::IMPORT_KEYS
            .iter()
            .filter(|k| k.ends_with("_ms") || k.contains("max_re"))
            .map(|k| format!("{k} = 5000\n"))
            .collect();
        read_config(&format!("persona = \"p\"\nledger = \"a.db\"\n[import]\n{all}enabled = true\ntail = true\nauto_retry = true\nworker_cmd = \"w\"\nclaude_config_dir = \"c\"\ncodex_home = \"c\"\ncursor_db = \"c\"\nopencode_dir = \"o\"\ngemini_dir = \"g\"\n").replace("max_restarts = 5000", "max_restarts = 5").replace("job_max_retries = 5000", "job_max_retries = 3")).unwrap();
    }

    #[test]
    fn invalid_config_has_its_code() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "persona = [").unwrap();
        assert_eq!(
            ConfigFile::read(&path).unwrap_err().code(),
            "config_invalid"
        );
        assert!(
            ConfigFile::read(&dir.path().join("absent.toml"))
                .unwrap()
                .persona
                .is_none()
        );
    }

    #[test]
    fn persona_resolution_is_flag_then_config_then_main() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path(), None);
        let worker = Overrides {
            worker_cmd: Some("w".into()),
            ..Overrides::default()
        };
        let s = ControlSettings::load(paths.clone(), &worker).unwrap();
        assert_eq!(s.persona, "main");
        std::fs::write(&paths.config_file, "persona = \"cfg\"\n").unwrap();
        let s = ControlSettings::load(paths.clone(), &worker).unwrap();
        assert_eq!(s.persona, "cfg");
        let flag = Overrides {
            persona: Some("flag".into()),
            ..worker.clone()
        };
        let s = ControlSettings::load(paths.clone(), &flag).unwrap();
        assert_eq!(s.persona, "flag");
        let off = Overrides {
            no_import: true,
            ..worker
        };
        assert!(!ControlSettings::load(paths, &off).unwrap().import_enabled);
    }
}
