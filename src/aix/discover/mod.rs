//! Discovery: which files under the source roots are sessions, what their path says about them,
//! and the order a backfill reads them in (SOURCES.md "Providers", "Backfill").
//!
//! Claude Code (`<root>` = a `projects` dir):
//! - `<root>/<project>/<session>.jsonl`: main session;
//! - `<root>/<project>/agent-<id>.jsonl`: legacy flat subagent;
//! - `<root>/<project>/<session>/subagents/**/agent-<id>.jsonl`: subagent of `<session>`, with an
//!   optional sibling `agent-<id>.meta.json` (`toolUseId`, `description`).
//!
//! Codex (`<root>` = a `sessions` dir): `<root>/**/rollout-*.jsonl`, and the same under the
//! sibling `archived_sessions` when the root is named `sessions`; a rollout stored compressed
//! (`rollout-*.jsonl.zst`) is one too, unless its plain `.jsonl` is beside it (read instead).
//!
//! Gemini CLI (`<root>` = a `tmp` dir):
//! - `<root>/<project>/chats/session-*.jsonl`: main session (append-only log);
//! - `<root>/<project>/chats/session-*.json`: legacy main session (whole-file document), unless
//!   the CLI migrated it to the `.jsonl` beside it (same name plus `l`, same session), which is
//!   then read instead;
//! - `<root>/<project>/chats/<parentId>/<id>.jsonl` (or `.json`, a document): subagent of
//!   session `<parentId>`, linked by that name even when the parent's file is gone.
//!
//! Anything else under a project (`logs.json`, `checkpoint-*.json`, tool outputs) is not a
//! session.
//!
//! Cursor (each configured entry, see [`cursor_dbs`]): the global
//! `User/globalStorage/state.vscdb` and every `User/workspaceStorage/<id>/state.vscdb`, each
//! workspace with the folder its `workspace.json` names.
//!
//! A missing or unreadable root or directory yields nothing (logged at debug), never an error.

mod cursor;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::config::WorkerOptions;
use super::cursor::FileIdentity;
use super::sources::{FileRole, Provider, SourceFile, SubagentMeta};

pub use self::cursor::{CursorDb, CursorWorkspace, cursor_dbs};

/// Directory depth bound of the Codex walk (`YYYY/MM/DD` needs 3); guards against odd trees.
const MAX_DEPTH: usize = 8;

/// A session file with the stat that ordered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub source: SourceFile,
    pub mtime_ms: i64,
}

/// The directories to watch and walk for these options.
pub fn roots(options: &WorkerOptions) -> Vec<(Provider, PathBuf)> {
    let mut roots: Vec<(Provider, PathBuf)> = Vec::new();
    for d in &options.claude_dirs {
        roots.push((Provider::ClaudeCode, d.clone()));
    }
    for d in &options.codex_dirs {
        roots.push((Provider::Codex, d.clone()));
        if d.file_name().is_some_and(|n| n == "sessions")
            && let Some(parent) = d.parent()
        {
            roots.push((Provider::Codex, parent.join("archived_sessions")));
        }
    }
    for d in &options.gemini_dirs {
        roots.push((Provider::GeminiCli, d.clone()));
    }
    // One folder given to two providers is walked by each (a file both would read is read once:
    // `discover` keeps a path's first finding).
    let mut seen = std::collections::HashSet::new();
    roots.retain(|(p, d)| seen.insert((*p, d.clone())));
    roots
}

/// Every session file under the roots, oldest first, a Claude Code session before its
/// subagents. Duplicate paths (overlapping roots) appear once.
pub fn discover(options: &WorkerOptions) -> Vec<Discovered> {
    let mut files: Vec<SourceFile> = Vec::new();
    for (provider, root) in roots(options) {
        match provider {
            Provider::ClaudeCode => claude_root(&root, &mut files),
            Provider::Codex => codex_dir(&root, 0, &mut files),
            Provider::GeminiCli => gemini_root(&root, &mut files),
            Provider::Cursor | Provider::OpenCode => {}
        }
    }
    // One file reached by several paths (a linked folder) is read once, under the smallest path,
    // so that every run keys it the same.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone())));
    order(files)
}

fn order(files: Vec<SourceFile>) -> Vec<Discovered> {
    let mut stamped: Vec<Discovered> = files
        .into_iter()
        .filter_map(|source| {
            let id = FileIdentity::stat(&source.path).ok()?;
            Some(Discovered {
                source,
                mtime_ms: id.mtime_ms,
            })
        })
        .collect();
    let main_mtime: HashMap<PathBuf, i64> = stamped
        .iter()
        .filter(|d| d.source.role == FileRole::Main)
        .map(|d| (d.source.path.clone(), d.mtime_ms))
        .collect();
    let mut gemini_mtime: HashMap<(PathBuf, String), i64> = HashMap::new();
    for d in &stamped {
        if let Some(k) = gemini_main_key(&d.source) {
            let m = gemini_mtime.entry(k).or_insert(d.mtime_ms);
            *m = (*m).max(d.mtime_ms);
        }
    }
    // A child sorts no earlier than its parent, and after it on a tie.
    let key = |d: &Discovered| -> (i64, u8, PathBuf) {
        let parent = match d.source.provider {
            Provider::GeminiCli => {
                gemini_parent_key(&d.source).and_then(|k| gemini_mtime.get(&k).copied())
            }
            _ => parent_main_path(&d.source).and_then(|p| main_mtime.get(&p).copied()),
        };
        match parent {
            Some(pm) => (d.mtime_ms.max(pm), 1, d.source.path.clone()),
            None => (d.mtime_ms, 0, d.source.path.clone()),
        }
    };
    stamped.sort_by_cached_key(key);
    stamped
}

/// `<project>/<session>.jsonl` for a subagent under `<project>/<session>/subagents/`.
pub fn parent_main_path(source: &SourceFile) -> Option<PathBuf> {
    let FileRole::Subagent {
        parent_session_id: Some(parent),
        ..
    } = &source.role
    else {
        return None;
    };
    let session_dir = source
        .path
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == parent.as_str()))?;
    Some(session_dir.with_file_name(format!("{parent}.jsonl")))
}

fn read_dir(dir: &Path) -> Vec<(PathBuf, fs::FileType)> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
            .collect(),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error_kind = ?e.kind(), "source dir not readable");
            Vec::new()
        }
    }
}

fn is_file(t: &fs::FileType, path: &Path) -> bool {
    t.is_file() || (t.is_symlink() && path.is_file())
}

/// A directory, or a link to one (a project folder moved elsewhere and linked back): followed.
/// Every walk has a bounded depth, so a link loop ends; a file reached by two paths is kept
/// once ([`discover`]).
fn is_dir(t: &fs::FileType, path: &Path) -> bool {
    t.is_dir() || (t.is_symlink() && path.is_dir())
}

fn claude_root(root: &Path, out: &mut Vec<SourceFile>) {
    for (project, t) in read_dir(root) {
        if is_dir(&t, &project) {
            claude_project(&project, out);
        }
    }
}

fn claude_project(project: &Path, out: &mut Vec<SourceFile>) {
    for (path, t) in read_dir(project) {
        if is_dir(&t, &path) {
            let Some(session) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            claude_subagents(&path.join("subagents"), session, 0, out);
            continue;
        }
        if !is_file(&t, &path) {
            continue;
        }
        if let Some(file) = claude_file(&path, None) {
            out.push(file);
        }
    }
}

fn claude_subagents(dir: &Path, session: &str, depth: usize, out: &mut Vec<SourceFile>) {
    if depth > MAX_DEPTH {
        return;
    }
    for (path, t) in read_dir(dir) {
        if is_dir(&t, &path) {
            claude_subagents(&path, session, depth + 1, out);
        } else if is_file(&t, &path)
            && let Some(f) = claude_file(&path, Some(session))
            && matches!(f.role, FileRole::Subagent { .. })
        {
            out.push(f);
        }
    }
}

/// Classifies one Claude Code `.jsonl` path; `session` is the parent session dir when the file
/// sits under `<session>/subagents/`.
pub fn claude_file(path: &Path, session: Option<&str>) -> Option<SourceFile> {
    let role = match FileRole::claude_code_for(path)? {
        FileRole::Subagent {
            agent_id,
            parent_session_id,
            ..
        } => FileRole::Subagent {
            agent_id,
            parent_session_id: parent_session_id.or_else(|| session.map(str::to_owned)),
            meta: read_meta(&SubagentMeta::path_for(path)),
        },
        FileRole::Main => FileRole::Main,
    };
    Some(SourceFile {
        provider: Provider::ClaudeCode,
        path: path.to_path_buf(),
        workspace: None,
        role,
    })
}

/// Reads `agent-<id>.meta.json`; `None` when absent or unreadable.
fn read_meta(path: &Path) -> Option<SubagentMeta> {
    SubagentMeta::from_json(&fs::read(path).ok()?)
}

fn codex_dir(dir: &Path, depth: usize, out: &mut Vec<SourceFile>) {
    if depth > MAX_DEPTH {
        return;
    }
    let entries = read_dir(dir);
    let names: std::collections::HashSet<std::ffi::OsString> = entries
        .iter()
        .filter_map(|(p, _)| p.file_name().map(ToOwned::to_owned))
        .collect();
    for (path, t) in entries {
        if is_dir(&t, &path) {
            codex_dir(&path, depth + 1, out);
        } else if is_file(&t, &path)
            && !plain_twin_exists(&path, &names)
            && let Some(f) = codex_file(&path)
        {
            out.push(f);
        }
    }
}

/// Whether `path` is a compressed rollout (`X.jsonl.zst`) whose plain `X.jsonl` is in the same
/// directory (`names`): Codex reads the plain one then, and so does discovery.
fn plain_twin_exists(path: &Path, names: &std::collections::HashSet<std::ffi::OsString>) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".zst"))
        .is_some_and(|plain| names.contains(std::ffi::OsStr::new(plain)))
}

/// Classifies one Codex path: `rollout-*.jsonl` is a session, and so is its compressed form
/// `rollout-*.jsonl.zst`.
pub fn codex_file(path: &Path) -> Option<SourceFile> {
    let name = path.file_name()?.to_str()?;
    let rollout = name.ends_with(".jsonl") || name.ends_with(".jsonl.zst");
    (name.starts_with("rollout-") && rollout).then(|| SourceFile {
        provider: Provider::Codex,
        path: path.to_path_buf(),
        workspace: None,
        role: FileRole::Main,
    })
}

fn gemini_root(root: &Path, out: &mut Vec<SourceFile>) {
    let mut registry: Option<HashMap<String, String>> = None;
    for (project, t) in read_dir(root) {
        if !is_dir(&t, &project) {
            continue;
        }
        let from = out.len();
        gemini_chats(&project.join("chats"), out);
        if out.len() == from {
            continue;
        }
        let registry = registry.get_or_insert_with(|| gemini_registry(root));
        let workspace = gemini_workspace(&project, registry);
        for f in &mut out[from..] {
            f.workspace.clone_from(&workspace);
        }
    }
}

/// Bytes read at most from one of the CLI's small registry files.
const REGISTRY_MAX_BYTES: u64 = 1 << 20;

fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    fs::File::open(path)
        .ok()?
        .take(REGISTRY_MAX_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The Gemini CLI's project registry, `<tmp>/../projects.json` (`{"projects": {"<path>":
/// "<slug>"}}`), as slug -> path; empty when absent or unreadable.
fn gemini_registry(tmp: &Path) -> HashMap<String, String> {
    let Some(text) = tmp
        .parent()
        .and_then(|g| read_small(&g.join("projects.json")))
    else {
        return HashMap::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        tracing::debug!("gemini projects.json not readable as JSON");
        return HashMap::new();
    };
    v.get("projects")
        .and_then(serde_json::Value::as_object)
        .map(|projects| {
            projects
                .iter()
                .filter_map(|(path, slug)| Some((slug.as_str()?.to_owned(), path.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// The working directory of a Gemini project directory: its `.project_root` (written by the
/// CLI beside `chats/`), else the registry's path for its name (a slug). Older CLIs named the
/// directory by a hash of the path, which cannot be reversed: `None` then.
fn gemini_workspace(project: &Path, registry: &HashMap<String, String>) -> Option<String> {
    let own = read_small(&project.join(".project_root"))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && !t.contains('\n'));
    own.or_else(|| {
        let name = project.file_name()?.to_str()?;
        registry.get(name).cloned()
    })
}

fn gemini_chats(chats: &Path, out: &mut Vec<SourceFile>) {
    for (path, t) in gemini_chat_files(chats) {
        if is_dir(&t, &path) {
            for (child, _) in gemini_chat_files(&path) {
                if let Some(f) = gemini_file(&child)
                    && matches!(f.role, FileRole::Subagent { .. })
                {
                    out.push(f);
                }
            }
        } else if let Some(f) = gemini_file(&path) {
            out.push(f);
        }
    }
}

/// The entries of one Gemini chats directory: its subdirectories and files, less a legacy
/// `.json` document that the CLI migrated to the `.jsonl` log beside it (same name plus `l`,
/// the same session), which is read instead.
fn gemini_chat_files(dir: &Path) -> Vec<(PathBuf, fs::FileType)> {
    let entries = read_dir(dir);
    let names: std::collections::HashSet<std::ffi::OsString> = entries
        .iter()
        .filter_map(|(p, _)| p.file_name().map(ToOwned::to_owned))
        .collect();
    entries
        .into_iter()
        .filter(|(path, t)| {
            if is_dir(t, path) {
                return true;
            }
            let migrated = path.extension().is_some_and(|e| e == "json")
                && path.file_name().is_some_and(|n| {
                    let mut log = n.to_owned();
                    log.push("l");
                    names.contains(&log)
                });
            is_file(t, path) && !migrated
        })
        .collect()
}

/// Classifies one Gemini CLI path: `<project>/chats/session-*.jsonl` or `.json` is a main
/// session, `<project>/chats/<parentId>/<id>.json[l]` a subagent of `<parentId>` (agent id
/// `<id>`). Looks at the path only (the walk drops a legacy `.json` that has a `.jsonl` twin).
pub fn gemini_file(path: &Path) -> Option<SourceFile> {
    let name = path.file_name()?.to_str()?;
    let dir = path.parent()?;
    let dir_name = dir.file_name()?.to_str()?;
    let file = |role| SourceFile {
        provider: Provider::GeminiCli,
        path: path.to_path_buf(),
        workspace: None,
        role,
    };
    if dir_name == "chats" {
        let session =
            name.starts_with("session-") && (name.ends_with(".jsonl") || name.ends_with(".json"));
        return session.then(|| file(FileRole::Main));
    }
    let chats = dir.parent()?.file_name()?;
    let agent = name
        .strip_suffix(".jsonl")
        .or_else(|| name.strip_suffix(".json"))
        .filter(|a| !a.is_empty())?;
    (chats == "chats").then(|| {
        file(FileRole::Subagent {
            agent_id: agent.to_owned(),
            parent_session_id: Some(dir_name.to_owned()),
            meta: None,
        })
    })
}

/// `(chats dir, short id)` of a Gemini main file `session-<ts>-<id8>.json[l]`.
fn gemini_main_key(source: &SourceFile) -> Option<(PathBuf, String)> {
    if source.provider != Provider::GeminiCli || source.role != FileRole::Main {
        return None;
    }
    let stem = source.path.file_stem()?.to_str()?;
    let short = stem.rsplit('-').next()?;
    Some((source.path.parent()?.to_path_buf(), short.to_owned()))
}

/// `(chats dir, short id)` of a Gemini subagent's parent: the CLI names a main log after the
/// first 8 characters of its session id.
fn gemini_parent_key(source: &SourceFile) -> Option<(PathBuf, String)> {
    let FileRole::Subagent {
        parent_session_id: Some(parent),
        ..
    } = &source.role
    else {
        return None;
    };
    let chats = source.path.parent()?.parent()?.to_path_buf();
    Some((chats, parent.chars().take(8).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_given_to_two_providers_is_a_root_of_each_and_a_repeated_one_is_one_root() {
        let shared = PathBuf::from("/h/shared");
        let options = WorkerOptions {
            claude_dirs: vec![shared.clone(), shared.clone()],
            codex_dirs: vec![shared.clone()],
            gemini_dirs: vec![shared.clone()],
            ..Default::default()
        };
        assert_eq!(
            roots(&options),
            vec![
                (Provider::ClaudeCode, shared.clone()),
                (Provider::Codex, shared.clone()),
                (Provider::GeminiCli, shared),
            ]
        );
    }

    /// A project folder, a Codex day folder and a Gemini project linked in from elsewhere are
    /// walked; a file reachable both directly and through a link is found once, under its
    /// smallest path.
    #[cfg(unix)]
    #[test]
    fn linked_folders_are_followed_and_a_file_reached_twice_is_found_once() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        let claude = dir.path().join("projects");
        let moved = elsewhere.join("-work-shop");
        std::fs::create_dir_all(&moved).unwrap();
        std::fs::create_dir_all(&claude).unwrap();
        std::fs::write(
            moved.join("aaaaaaaa-0000-4000-8000-00000000000a.jsonl"),
            "{}\n",
        )
        .unwrap();
        symlink(&moved, claude.join("-work-shop")).unwrap();
        // The same project reached twice: through a second link beside the first.
        symlink(&moved, claude.join("-work-shop-again")).unwrap();
        let codex = dir.path().join("sessions");
        let day = elsewhere.join("02");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::create_dir_all(codex.join("2026/03")).unwrap();
        std::fs::write(
            day.join("rollout-2026-03-02T10-00-00-0199aaaa-0000-7000-8000-000000000001.jsonl"),
            "{}\n",
        )
        .unwrap();
        symlink(&day, codex.join("2026/03/02")).unwrap();
        let gemini = dir.path().join("tmp");
        let chats = elsewhere.join("proj-g/chats");
        std::fs::create_dir_all(&chats).unwrap();
        std::fs::create_dir_all(&gemini).unwrap();
        std::fs::write(
            chats.join("session-2026-03-02T10-00-aaaa0001.jsonl"),
            "{}\n",
        )
        .unwrap();
        symlink(elsewhere.join("proj-g"), gemini.join("proj-g")).unwrap();
        let options = WorkerOptions {
            claude_dirs: vec![claude.clone()],
            codex_dirs: vec![codex.clone()],
            gemini_dirs: vec![gemini.clone()],
            ..Default::default()
        };
        let mut found: Vec<PathBuf> = discover(&options)
            .into_iter()
            .map(|d| d.source.path)
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                claude.join("-work-shop/aaaaaaaa-0000-4000-8000-00000000000a.jsonl"),
                codex.join(
                    "2026/03/02/rollout-2026-03-02T10-00-00-0199aaaa-0000-7000-8000-000000000001.jsonl"
                ),
                gemini.join("proj-g/chats/session-2026-03-02T10-00-aaaa0001.jsonl"),
            ]
        );
    }
}
