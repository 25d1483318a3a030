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
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            claude_dirs: Vec::new(),
            codex_dirs: Vec::new(),
            full: false,
            limits: EmitLimits::default(),
            debounce: Duration::from_millis(50),
            max_debounce: Duration::from_millis(200),
            reconcile_interval: Duration::from_secs(60),
            parse_threads: 0,
            idle_evict: Duration::from_secs(600),
            inflight_bytes: 32 << 20,
        }
    }
}

/// The parts of [`WorkerOptions`] a caller may set explicitly; unset ones fall back to
/// `run.start.options`, then to the environment's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RootOverrides {
    pub claude_dirs: Vec<PathBuf>,
    pub codex_dirs: Vec<PathBuf>,
    pub full: bool,
}

impl WorkerOptions {
    /// Resolves the roots: explicit flags win, then `run.start.options` (`claudeDirs`,
    /// `codexDirs`: arrays of paths; `full`: bool), then the defaults of the environment.
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
            codex_dirs_from(Some("".into()), home),
            vec![PathBuf::from("/h/.codex/sessions")]
        );
    }
}
