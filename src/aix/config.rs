//! Worker settings: source roots, `full`, packing limits and tail timings, from defaults, the
//! environment, `run.start.options` and command-line flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::emit::EmitLimits;

/// Everything a run needs to know besides its mode and cursors.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// Claude Code `projects` directories.
    pub claude_dirs: Vec<PathBuf>,
    /// Codex `sessions` directories (their sibling `archived_sessions` is read too).
    pub codex_dirs: Vec<PathBuf>,
    /// Cursor locations: `state.vscdb` files or `User` folders, expanded to the databases they
    /// hold by `discover::cursor_dbs` (a global database brings its workspaces).
    pub cursor_dbs: Vec<PathBuf>,
    /// OpenCode data directories (holding `opencode.db`, `opencode-*.db` and legacy `storage/`).
    pub opencode_dirs: Vec<PathBuf>,
    /// Gemini CLI `tmp` directories (holding `<project>/chats/`).
    pub gemini_dirs: Vec<PathBuf>,
    /// Read every file whole, ignoring cursors.
    pub full: bool,
    pub limits: EmitLimits,
    /// Tail: least time between two reads of one file (a change to a file not read within it
    /// is read at once; later changes are coalesced).
    pub debounce: Duration,
    /// Tail: longest any change waits before its file is read.
    pub max_debounce: Duration,
    /// Period of the directory re-scan that backstops missed notifications.
    pub reconcile_interval: Duration,
    /// Parse threads of a backfill (0: one per core, at most 4).
    pub parse_threads: usize,
    /// Backfill: file bytes being parsed or waiting to be written at once (a larger file still
    /// goes alone).
    pub inflight_bytes: u64,
    /// Tail: drop a file's in-memory parse state after this long without changes.
    pub idle_evict: Duration,
    /// The mapping version of each provider (this build's; tests set older ones to write the
    /// ledger an older worker would have written).
    pub mappings: super::mapping::MappingVersions,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            claude_dirs: Vec::new(),
            codex_dirs: Vec::new(),
            cursor_dbs: Vec::new(),
            opencode_dirs: Vec::new(),
            gemini_dirs: Vec::new(),
            full: false,
            limits: EmitLimits::default(),
            debounce: Duration::from_millis(50),
            max_debounce: Duration::from_millis(200),
            reconcile_interval: Duration::from_secs(60),
            parse_threads: 0,
            idle_evict: Duration::from_secs(600),
            inflight_bytes: 32 << 20,
            mappings: super::mapping::MappingVersions::CURRENT,
        }
    }
}

/// The parts of [`WorkerOptions`] a caller may set explicitly; unset ones fall back to
/// `run.start.options`, then to the environment's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootOverrides {
    pub claude_dirs: Vec<PathBuf>,
    pub codex_dirs: Vec<PathBuf>,
    pub cursor_dbs: Vec<PathBuf>,
    pub opencode_dirs: Vec<PathBuf>,
    pub gemini_dirs: Vec<PathBuf>,
    pub full: bool,
}

impl WorkerOptions {
    /// Resolves the roots: explicit flags win, then `run.start.options` (`claudeDirs`,
    /// `codexDirs`, `cursorDbs`, `opencodeDirs`, `geminiDirs`: arrays of paths; `full`: bool),
    /// then the defaults of the environment.
    pub fn resolve(flags: &RootOverrides, run_options: Option<&Value>) -> Self {
        let from_options = |name: &str| -> Vec<PathBuf> {
            run_options
                .and_then(|o| o.get(name))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter(|s| !s.trim().is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let pick = |flag: &Vec<PathBuf>, name: &str, default: fn() -> Vec<PathBuf>| {
            if !flag.is_empty() {
                return flag.clone();
            }
            let opt = from_options(name);
            if opt.is_empty() { default() } else { opt }
        };
        let full_opt = run_options
            .and_then(|o| o.get("full"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // Absolute, so that discovered paths, cursor keys and watcher events name files alike.
        let absolute = |dirs: Vec<PathBuf>| -> Vec<PathBuf> {
            dirs.into_iter()
                .map(|d| std::path::absolute(&d).unwrap_or(d))
                .collect()
        };
        Self {
            claude_dirs: absolute(pick(&flags.claude_dirs, "claudeDirs", default_claude_dirs)),
            codex_dirs: absolute(pick(&flags.codex_dirs, "codexDirs", default_codex_dirs)),
            cursor_dbs: absolute(pick(&flags.cursor_dbs, "cursorDbs", default_cursor_dbs)),
            opencode_dirs: absolute(pick(
                &flags.opencode_dirs,
                "opencodeDirs",
                default_opencode_dirs,
            )),
            gemini_dirs: absolute(pick(&flags.gemini_dirs, "geminiDirs", default_gemini_dirs)),
            full: flags.full || full_opt,
            ..Self::default()
        }
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Each dir of `$CLAUDE_CONFIG_DIR` (comma list) + `/projects`, else `~/.claude/projects` and
/// `~/.config/claude/projects`.
pub fn default_claude_dirs() -> Vec<PathBuf> {
    claude_dirs_from(std::env::var_os("CLAUDE_CONFIG_DIR"), home())
}

/// `$CODEX_HOME/sessions`, else `~/.codex/sessions`.
pub fn default_codex_dirs() -> Vec<PathBuf> {
    codex_dirs_from(std::env::var_os("CODEX_HOME"), home())
}

/// Cursor's `User` folder where it exists: `$XDG_CONFIG_HOME/Cursor` or `~/.config/Cursor`
/// (Linux), `~/Library/Application Support/Cursor` (macOS), each `/User` (its global database
/// and every workspace's are read).
pub fn default_cursor_dbs() -> Vec<PathBuf> {
    existing(cursor_dbs_from(std::env::var_os("XDG_CONFIG_HOME"), home()))
}

/// `$OPENCODE_DATA_DIR`, else `$XDG_DATA_HOME/opencode` or `~/.local/share/opencode`, where it
/// exists.
pub fn default_opencode_dirs() -> Vec<PathBuf> {
    existing(opencode_dirs_from(
        std::env::var_os("OPENCODE_DATA_DIR"),
        std::env::var_os("XDG_DATA_HOME"),
        home(),
    ))
}

/// `$GEMINI_DIR/tmp` (our override of `~/.gemini`, for a moved Gemini home), else
/// `~/.gemini/tmp`, where it exists.
pub fn default_gemini_dirs() -> Vec<PathBuf> {
    existing(gemini_dirs_from(std::env::var_os("GEMINI_DIR"), home()))
}

/// Every default location of `provider`, existing or not, in the order they are tried: what
/// `aix scan`, `nex doctor` and a backfill that found nothing list as looked in when none of
/// them exists (Cursor, OpenCode and Gemini CLI are enabled only where one does).
pub fn default_candidates(provider: super::sources::Provider) -> Vec<PathBuf> {
    use super::sources::Provider;
    match provider {
        Provider::ClaudeCode => default_claude_dirs(),
        Provider::Codex => default_codex_dirs(),
        Provider::Cursor => cursor_dbs_from(std::env::var_os("XDG_CONFIG_HOME"), home()),
        Provider::OpenCode => opencode_dirs_from(
            std::env::var_os("OPENCODE_DATA_DIR"),
            std::env::var_os("XDG_DATA_HOME"),
            home(),
        ),
        Provider::GeminiCli => gemini_dirs_from(std::env::var_os("GEMINI_DIR"), home()),
    }
}

/// The providers added after the first two are enabled by default only where their location
/// exists, so a machine without them costs no watches and no warnings.
fn existing(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.into_iter().filter(|p| p.exists()).collect()
}

fn non_empty(v: Option<OsString>) -> Option<PathBuf> {
    v.filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn cursor_dbs_from(xdg_config: Option<OsString>, home: Option<PathBuf>) -> Vec<PathBuf> {
    let user = |cursor: PathBuf| cursor.join("User");
    let mut out = Vec::new();
    if let Some(c) = non_empty(xdg_config) {
        out.push(user(c.join("Cursor")));
    }
    if let Some(h) = home {
        out.push(user(h.join(".config").join("Cursor")));
        out.push(user(
            h.join("Library").join("Application Support").join("Cursor"),
        ));
    }
    out.dedup();
    out
}

fn opencode_dirs_from(
    data_dir: Option<OsString>,
    xdg_data: Option<OsString>,
    home: Option<PathBuf>,
) -> Vec<PathBuf> {
    if let Some(d) = non_empty(data_dir) {
        return vec![d];
    }
    if let Some(x) = non_empty(xdg_data) {
        return vec![x.join("opencode")];
    }
    home.map(|h| vec![h.join(".local").join("share").join("opencode")])
        .unwrap_or_default()
}

fn gemini_dirs_from(gemini_dir: Option<OsString>, home: Option<PathBuf>) -> Vec<PathBuf> {
    if let Some(d) = non_empty(gemini_dir) {
        return vec![d.join("tmp")];
    }
    home.map(|h| vec![h.join(".gemini").join("tmp")])
        .unwrap_or_default()
}

fn claude_dirs_from(config_dir: Option<OsString>, home: Option<PathBuf>) -> Vec<PathBuf> {
    if let Some(dirs) = config_dir {
        let dirs: Vec<PathBuf> = dirs
            .to_string_lossy()
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join("projects"))
            .collect();
        if !dirs.is_empty() {
            return dirs;
        }
    }
    home.map(|h| {
        vec![
            h.join(".claude").join("projects"),
            h.join(".config").join("claude").join("projects"),
        ]
    })
    .unwrap_or_default()
}

fn codex_dirs_from(codex_home: Option<OsString>, home: Option<PathBuf>) -> Vec<PathBuf> {
    if let Some(h) = codex_home.filter(|h| !h.is_empty()) {
        return vec![PathBuf::from(h).join("sessions")];
    }
    home.map(|h| vec![h.join(".codex").join("sessions")])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_options_which_win_over_defaults() {
        let opts = serde_json::json!({"claudeDirs": ["/o/c"], "codexDirs": ["/o/x"], "full": true});
        let flags = RootOverrides {
            claude_dirs: vec![PathBuf::from("/f/c")],
            ..Default::default()
        };
        let o = WorkerOptions::resolve(&flags, Some(&opts));
        assert_eq!(o.claude_dirs, vec![PathBuf::from("/f/c")]);
        assert_eq!(o.codex_dirs, vec![PathBuf::from("/o/x")]);
        assert!(o.full);
        let o = WorkerOptions::resolve(
            &RootOverrides::default(),
            Some(&serde_json::json!({"codexDirs": "nope"})),
        );
        assert_eq!(o.codex_dirs, default_codex_dirs());
        assert!(!o.full);
    }

    #[test]
    fn environment_defaults() {
        let home = Some(PathBuf::from("/h"));
        assert_eq!(
            claude_dirs_from(Some(" /a , /b,".into()), home.clone()),
            vec![PathBuf::from("/a/projects"), PathBuf::from("/b/projects")]
        );
        assert_eq!(
            claude_dirs_from(Some(",".into()), home.clone()),
            vec![
                PathBuf::from("/h/.claude/projects"),
                PathBuf::from("/h/.config/claude/projects")
            ]
        );
        assert!(claude_dirs_from(None, None).is_empty());
        assert_eq!(
            codex_dirs_from(Some("/c".into()), home.clone()),
            vec![PathBuf::from("/c/sessions")]
        );
        assert_eq!(
            codex_dirs_from(Some("".into()), home.clone()),
            vec![PathBuf::from("/h/.codex/sessions")]
        );
        assert_eq!(
            cursor_dbs_from(Some("/x".into()), home.clone()),
            vec![
                PathBuf::from("/x/Cursor/User"),
                PathBuf::from("/h/.config/Cursor/User"),
                PathBuf::from("/h/Library/Application Support/Cursor/User"),
            ]
        );
        assert_eq!(
            opencode_dirs_from(Some("/d".into()), Some("/x".into()), home.clone()),
            vec![PathBuf::from("/d")]
        );
        assert_eq!(
            opencode_dirs_from(None, Some("/x".into()), home.clone()),
            vec![PathBuf::from("/x/opencode")]
        );
        assert_eq!(
            opencode_dirs_from(Some("".into()), None, home.clone()),
            vec![PathBuf::from("/h/.local/share/opencode")]
        );
        assert_eq!(
            gemini_dirs_from(None, home.clone()),
            vec![PathBuf::from("/h/.gemini/tmp")]
        );
        assert_eq!(
            gemini_dirs_from(Some("/g".into()), home),
            vec![PathBuf::from("/g/tmp")]
        );
    }

    #[test]
    fn new_providers_default_only_where_their_location_exists() {
        let dir = tempfile::tempdir().unwrap();
        let there = dir.path().join("there");
        std::fs::create_dir(&there).unwrap();
        assert_eq!(
            existing(vec![dir.path().join("missing"), there.clone()]),
            vec![there]
        );
    }
}
