//! Source locations given by a user (`--claude-dir`, `--codex-dir`, `--gemini-dir`,
//! `--opencode-dir`, `--cursor-db`, on `aix` and `nex` alike): each is recognised by what it
//! holds, so a tool's home (`~/.claude`, `~/.codex`, `~/.gemini`, Cursor's folder, the folder
//! holding OpenCode's data dir) works as well as the directory the parser reads, and a path
//! that does not exist or holds something else is refused with a message naming it.
//!
//! # Contract
//! - A path that does not exist: [`LocateError::Missing`].
//! - An empty directory is accepted as it is: nothing there yet (a fresh install), and the run
//!   reads whatever appears in it later.
//! - A non-empty directory (or a file) in which none of the provider's forms is found:
//!   [`LocateError::NotThisTool`], naming what was expected.
//! - Otherwise the directory the parser reads (`~/.claude` -> `~/.claude/projects`).

use std::path::{Path, PathBuf};

use super::discover::codex_file;
use super::sources::Provider;

/// Why a given location cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocateError {
    #[error("{flag} {path}: no such file or directory")]
    Missing { flag: &'static str, path: String },
    #[error("{flag} {path}: holds no {tool} data (expected {expected})")]
    NotThisTool {
        flag: &'static str,
        path: String,
        tool: &'static str,
        expected: &'static str,
    },
}

impl LocateError {
    pub fn code(&self) -> &'static str {
        match self {
            LocateError::Missing { .. } => "source_not_found",
            LocateError::NotThisTool { .. } => "source_not_recognised",
        }
    }
}

/// The command-line flag that gives a location of `provider`.
pub const fn flag(provider: Provider) -> &'static str {
    match provider {
        Provider::ClaudeCode => "--claude-dir",
        Provider::Codex => "--codex-dir",
        Provider::Cursor => "--cursor-db",
        Provider::OpenCode => "--opencode-dir",
        Provider::GeminiCli => "--gemini-dir",
    }
}

/// What a location of `provider` may be, in words (the error's "expected").
const fn expected(provider: Provider) -> &'static str {
    match provider {
        Provider::ClaudeCode => "~/.claude or its projects/ folder of <project>/<session>.jsonl",
        Provider::Codex => "~/.codex or its sessions/ folder of YYYY/MM/DD/rollout-*.jsonl",
        Provider::Cursor => {
            "Cursor's folder, its User/ folder, or a state.vscdb (globalStorage or workspaceStorage)"
        }
        Provider::OpenCode => "an OpenCode data dir holding opencode.db, storage/ or project/",
        Provider::GeminiCli => "~/.gemini or its tmp/ folder of <project>/chats/",
    }
}

/// The location the parser of `provider` reads for the user-given `path` (see the module's
/// contract).
pub fn locate(provider: Provider, path: &Path) -> Result<PathBuf, LocateError> {
    let shown = || path.display().to_string();
    if !path.exists() {
        return Err(LocateError::Missing {
            flag: flag(provider),
            path: shown(),
        });
    }
    if path.is_dir() && is_empty_dir(path) {
        return Ok(path.to_path_buf());
    }
    let found = match provider {
        Provider::ClaudeCode => home_or(path, "projects", claude_projects),
        Provider::Codex => home_or(path, "sessions", codex_sessions),
        Provider::GeminiCli => home_or(path, "tmp", gemini_tmp),
        Provider::OpenCode => opencode_dir(path),
        Provider::Cursor => cursor_location(path),
    };
    found.ok_or_else(|| LocateError::NotThisTool {
        flag: flag(provider),
        path: shown(),
        tool: provider.as_str(),
        expected: expected(provider),
    })
}

/// Each of `paths` located (the first error ends it).
pub fn locate_all(provider: Provider, paths: &[PathBuf]) -> Result<Vec<PathBuf>, LocateError> {
    paths.iter().map(|p| locate(provider, p)).collect()
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_none())
}

/// `dir/<sub>` when `dir` is the tool's home holding it, else `dir` when `holds(dir)`.
fn home_or(dir: &Path, sub: &str, holds: fn(&Path) -> bool) -> Option<PathBuf> {
    if !dir.is_dir() {
        return None;
    }
    let inner = dir.join(sub);
    if inner.is_dir() && (is_empty_dir(&inner) || holds(&inner)) {
        return Some(inner);
    }
    holds(dir).then(|| dir.to_path_buf())
}

/// Entries of `dir` (unreadable: none).
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e == ext)
}

/// A projects folder: `<project>/<session>.jsonl`, or project folders named as Claude Code
/// names them (the project's path with `/` as `-`: `-home-u-demo`), or a project folder itself.
fn claude_projects(dir: &Path) -> bool {
    entries(dir).iter().any(|e| {
        let project_name = e
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('-'));
        (e.is_dir() && (project_name || entries(e).iter().any(|f| has_ext(f, "jsonl"))))
            || has_ext(e, "jsonl")
    })
}

/// A sessions folder: `rollout-*.jsonl` (or compressed, `.jsonl.zst`) files at any depth up to
/// `YYYY/MM/DD`.
fn codex_sessions(dir: &Path) -> bool {
    fn walk(dir: &Path, depth: u8) -> bool {
        entries(dir).iter().any(|e| {
            (!e.is_dir() && codex_file(e).is_some())
                || (depth < 3 && e.is_dir() && walk(e, depth + 1))
        })
    }
    walk(dir, 0)
}

/// A tmp folder: `<project>/chats/`.
fn gemini_tmp(dir: &Path) -> bool {
    entries(dir).iter().any(|e| e.join("chats").is_dir())
}

/// An OpenCode data dir, or a folder holding one as `opencode/` (`~/.local/share`).
fn opencode_dir(path: &Path) -> Option<PathBuf> {
    let holds = |d: &Path| {
        d.join("opencode.db").is_file()
            || d.join("storage").is_dir()
            || d.join("project").is_dir()
            || entries(d).iter().any(|e| {
                e.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("opencode-") && n.ends_with(".db"))
            })
    };
    if !path.is_dir() {
        return None;
    }
    if holds(path) {
        return Some(path.to_path_buf());
    }
    let inner = path.join("opencode");
    (inner.is_dir() && holds(&inner)).then_some(inner)
}

/// A `state.vscdb`, a `User` folder, Cursor's own folder, or a folder holding `state.vscdb`:
/// the forms `discover::cursor_dbs` expands.
fn cursor_location(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return has_ext(path, "vscdb").then(|| path.to_path_buf());
    }
    let known = path.join("globalStorage").is_dir()
        || path.join("workspaceStorage").is_dir()
        || path.join("User").is_dir()
        || path.join("state.vscdb").is_file();
    known.then(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"{}\n").unwrap();
    }

    #[test]
    fn a_tools_home_is_recognised_by_what_it_holds() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path();
        touch(&h.join(".claude/projects/-p/s.jsonl"));
        touch(&h.join(".codex/sessions/2025/01/02/rollout-x.jsonl"));
        std::fs::create_dir_all(h.join(".gemini/tmp/abc/chats")).unwrap();
        std::fs::create_dir_all(h.join("share/opencode/storage")).unwrap();
        std::fs::create_dir_all(h.join("Cursor/User/globalStorage")).unwrap();
        let cc = Provider::ClaudeCode;
        assert_eq!(
            locate(cc, &h.join(".claude")),
            Ok(h.join(".claude/projects"))
        );
        assert_eq!(
            locate(cc, &h.join(".claude/projects")),
            Ok(h.join(".claude/projects"))
        );
        assert_eq!(
            locate(Provider::Codex, &h.join(".codex")),
            Ok(h.join(".codex/sessions"))
        );
        // A home whose rollouts are all stored compressed is one too.
        touch(&h.join("zst/.codex/sessions/2025/01/02/rollout-y.jsonl.zst"));
        assert_eq!(
            locate(Provider::Codex, &h.join("zst/.codex")),
            Ok(h.join("zst/.codex/sessions"))
        );
        assert_eq!(
            locate(Provider::GeminiCli, &h.join(".gemini")),
            Ok(h.join(".gemini/tmp"))
        );
        assert_eq!(
            locate(Provider::OpenCode, &h.join("share")),
            Ok(h.join("share/opencode"))
        );
        assert_eq!(
            locate(Provider::Cursor, &h.join("Cursor/User")),
            Ok(h.join("Cursor/User"))
        );
        // The other tool's form, and a path that is not there.
        assert_eq!(
            locate(cc, &h.join(".codex")).unwrap_err().code(),
            "source_not_recognised"
        );
        assert_eq!(
            locate(cc, &h.join("nope")).unwrap_err().code(),
            "source_not_found"
        );
        // An empty directory: nothing yet.
        std::fs::create_dir_all(h.join("empty")).unwrap();
        assert_eq!(locate(cc, &h.join("empty")), Ok(h.join("empty")));
    }
}
