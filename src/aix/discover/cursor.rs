//! Cursor's databases: which `state.vscdb` files an entry names, and what their place in
//! Cursor's `User` folder says about each (the module doc of `discover`).

use std::path::{Path, PathBuf};

use super::{read_dir, read_small};

/// One Cursor `state.vscdb` to poll, with what its place in Cursor's `User` folder says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorDb {
    pub path: PathBuf,
    /// Set for a database under `User/workspaceStorage/<id>/`.
    pub workspace: Option<CursorWorkspace>,
    /// For a global database: the workspace databases beside it whose `workspace.json` names a
    /// folder, with that folder (their composer lists say which global session is whose).
    pub workspaces: Vec<(PathBuf, String)>,
}

/// What a workspace database's neighbours say about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorWorkspace {
    /// The folder (or `.code-workspace` file) its `workspace.json` names, as a path for a
    /// `file:` URI and as written for any other (a remote's `vscode-remote://…`).
    pub folder: Option<String>,
    /// `User/globalStorage/state.vscdb` beside its `workspaceStorage`, when it exists: a composer
    /// stored there is that session's copy of record, so the workspace's legacy copy is skipped.
    pub global: Option<PathBuf>,
}

/// The Cursor databases the configured entries name, each once, in entry order (a global
/// database before its workspaces, workspaces by directory name). An entry is recognised by
/// what it is and holds:
/// - `…/globalStorage/state.vscdb`: that database, and every database under the sibling
///   `workspaceStorage/` (also the global database's [`CursorDb::workspaces`]);
/// - `…/workspaceStorage/<id>/state.vscdb`: that workspace alone;
/// - any other file: that database alone;
/// - a directory holding `globalStorage/` or `workspaceStorage/`: Cursor's `User` folder, read
///   whole; one holding `User/`: Cursor's own folder, its `User` read whole; one holding
///   `state.vscdb`: that database, as its place says.
///
/// Missing entries and directories yield nothing (logged at debug), so a later run picks up a
/// workspace created meanwhile.
pub fn cursor_dbs(entries: &[PathBuf]) -> Vec<CursorDb> {
    let mut out = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            cursor_dir(entry, &mut out);
        } else if entry.is_file() {
            cursor_file(entry, &mut out);
        } else {
            tracing::debug!(path = %entry.display(), "cursor location not found");
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert(d.path.clone()));
    out
}

/// File name of every Cursor database.
const CURSOR_DB: &str = "state.vscdb";

fn cursor_dir(dir: &Path, out: &mut Vec<CursorDb>) {
    if dir.join("globalStorage").is_dir() || dir.join("workspaceStorage").is_dir() {
        cursor_user(dir, out);
    } else if dir.join("User").is_dir() {
        cursor_user(&dir.join("User"), out);
    } else if dir.join(CURSOR_DB).is_file() {
        cursor_file(&dir.join(CURSOR_DB), out);
    } else {
        tracing::debug!(path = %dir.display(), "no cursor database in directory");
    }
}

/// A `User` folder: its global database, then its workspaces'.
fn cursor_user(user: &Path, out: &mut Vec<CursorDb>) {
    let global = user.join("globalStorage").join(CURSOR_DB);
    if global.is_file() {
        cursor_global(&global, user, out);
    } else {
        out.extend(cursor_workspaces(&user.join("workspaceStorage"), None));
    }
}

/// The global database `db` of the `User` folder `user`, then its workspaces.
fn cursor_global(db: &Path, user: &Path, out: &mut Vec<CursorDb>) {
    let workspaces = cursor_workspaces(&user.join("workspaceStorage"), Some(db));
    out.push(CursorDb {
        path: db.to_path_buf(),
        workspace: None,
        workspaces: workspaces
            .iter()
            .filter_map(|w| Some((w.path.clone(), w.workspace.as_ref()?.folder.clone()?)))
            .collect(),
    });
    out.extend(workspaces);
}

fn cursor_workspaces(storage: &Path, global: Option<&Path>) -> Vec<CursorDb> {
    let mut dirs: Vec<PathBuf> = read_dir(storage)
        .into_iter()
        .filter(|(_, t)| t.is_dir())
        .map(|(p, _)| p)
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| dir.join(CURSOR_DB))
        .filter(|db| db.is_file())
        .map(|db| cursor_workspace_db(db, global))
        .collect()
}

fn cursor_workspace_db(db: PathBuf, global: Option<&Path>) -> CursorDb {
    let folder = db
        .parent()
        .and_then(|d| read_small(&d.join("workspace.json")))
        .and_then(|t| workspace_folder(&t));
    CursorDb {
        path: db,
        workspace: Some(CursorWorkspace {
            folder,
            global: global.map(Path::to_path_buf),
        }),
        workspaces: Vec::new(),
    }
}

/// A database file, classified by its place.
fn cursor_file(db: &Path, out: &mut Vec<CursorDb>) {
    let dir = db.parent();
    let dir_name = dir.and_then(Path::file_name);
    if dir_name.is_some_and(|n| n == "globalStorage")
        && let Some(user) = dir.and_then(Path::parent)
    {
        cursor_global(db, user, out);
        return;
    }
    let storage = dir.and_then(Path::parent);
    if storage
        .and_then(Path::file_name)
        .is_some_and(|n| n == "workspaceStorage")
    {
        let global = storage
            .and_then(Path::parent)
            .map(|user| user.join("globalStorage").join(CURSOR_DB))
            .filter(|g| g.is_file());
        out.push(cursor_workspace_db(db.to_path_buf(), global.as_deref()));
        return;
    }
    out.push(CursorDb {
        path: db.to_path_buf(),
        workspace: None,
        workspaces: Vec::new(),
    });
}

/// The folder a `workspace.json` names (`folder`, else `workspace`); `None` when it names
/// neither or is not JSON.
fn workspace_folder(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let uri = ["folder", "workspace"]
        .iter()
        .find_map(|k| v.get(*k)?.as_str())
        .filter(|s| !s.trim().is_empty())?;
    Some(file_uri_path(uri).unwrap_or_else(|| uri.to_owned()))
}

/// The path of a `file:` URI, percent-decoded (`file:///c%3A/x` -> `c:/x`); `None` for any other
/// scheme or an undecodable one.
fn file_uri_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("file://")?;
    // `file://host/share` names a UNC path; `file:///p` a local one.
    let path = match rest.strip_prefix('/') {
        Some(_) => rest.to_owned(),
        None => format!("//{rest}"),
    };
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    // A Windows drive: `/c:/Users` -> `c:/Users`.
    let b = decoded.as_bytes();
    if b.len() >= 3 && b[0] == b'/' && b[1].is_ascii_alphabetic() && b[2] == b':' {
        return Some(decoded[1..].to_owned());
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_json_names_a_folder_as_a_path() {
        let f = |t: &str| workspace_folder(t);
        assert_eq!(
            f(r#"{"folder": "file:///home/a/my%20proj"}"#).as_deref(),
            Some("/home/a/my proj")
        );
        assert_eq!(
            f(r#"{"folder": "file:///c%3A/Users/a/vite"}"#).as_deref(),
            Some("c:/Users/a/vite")
        );
        assert_eq!(
            f(r#"{"workspace": "file:///w/x.code-workspace"}"#).as_deref(),
            Some("/w/x.code-workspace")
        );
        assert_eq!(
            f(r#"{"folder": "vscode-remote://ssh-remote%2Bbox/srv"}"#).as_deref(),
            Some("vscode-remote://ssh-remote%2Bbox/srv")
        );
        assert_eq!(
            f(r#"{"folder": "file://server/share/p"}"#).as_deref(),
            Some("//server/share/p")
        );
        assert_eq!(
            f(r#"{"folder": "file:///bad%zz"}"#).as_deref(),
            Some("file:///bad%zz")
        );
        assert_eq!(f("{}"), None);
        assert_eq!(f("not json"), None);
    }
}
