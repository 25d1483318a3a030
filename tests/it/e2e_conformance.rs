//! Every real sample (`NEX_SAMPLES_DIR/claude-code/*`, `NEX_SAMPLES_DIR/codex/*`,
//! `NEX_SAMPLES_DIR/gemini/*`; skipped when unset or empty) through `aix emit --mode backfill | nex import replay -` (the built binaries):
//! 0 failed, 0 rejected; the ledger holds exactly the sessions, messages and tool calls that
//! `aix scan --json` reports; every subagent's lineage (parent label, spawning tool call row
//! and its `spawned_session_label`) is in the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use nex::import::{IdKind, scoped_id};
use rusqlite::{Connection, OptionalExtension};

use crate::e2e_support::{Tree, assert_clean, backfill, files_under, open, samples_dir};

fn copy_tree(from: &Path, to: &Path) {
    let mut files = Vec::new();
    files_under(from, &mut files);
    for f in files {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

/// The samples laid out as the worker's roots: each `claude-code/<name>` a project, each
/// `codex/<name>/sessions` (or `codex/<name>`) merged under the Codex root, each
/// `gemini/<name>/<file>.json` a legacy session of project `<name>` (renamed to the CLI's
/// `session-<time>-<id8>.json`).
pub fn sample_tree(samples: &Path) -> Tree {
    let tree = Tree::new();
    copy_tree(&samples.join("claude-code"), &tree.claude());
    if let Ok(rd) = std::fs::read_dir(samples.join("codex")) {
        for e in rd.flatten() {
            let p = e.path();
            let sessions = p.join("sessions");
            copy_tree(
                if sessions.is_dir() { &sessions } else { &p },
                &tree.codex(),
            );
        }
    }
    let mut gemini = Vec::new();
    files_under(&samples.join("gemini"), &mut gemini);
    for (i, f) in gemini.iter().enumerate() {
        let Some(project) = f.parent().and_then(Path::file_name) else {
            continue;
        };
        let chats = tree.gemini().join(project).join("chats");
        std::fs::create_dir_all(&chats).unwrap();
        let name = format!("session-2024-01-01T10-00-{i:08x}.json");
        std::fs::copy(f, chats.join(name)).unwrap();
    }
    tree
}

#[derive(Default)]
struct Expected {
    sessions: BTreeSet<(String, String)>,
    messages: BTreeSet<(String, String, String)>,
    tool_calls: BTreeSet<(String, String, String)>,
    /// (provider, child session) -> parent session.
    parents: BTreeMap<(String, String), String>,
    /// (provider, child session) -> (parent session, spawning tool call id).
    spawns: BTreeMap<(String, String), (String, String)>,
}

fn scan(tree: &Tree) -> Expected {
    let out = Command::new(env!("CARGO_BIN_EXE_aix"))
        .arg("scan")
        .arg("--json")
        .args(tree.roots())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut e = Expected::default();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let item: nex::protocol::ImportSessionItem = serde_json::from_str(line).unwrap();
        let (p, s) = (item.source_provider.clone(), item.source_session_id.clone());
        e.sessions.insert((p.clone(), s.clone()));
        for m in &item.messages {
            e.messages
                .insert((p.clone(), s.clone(), m.source_message_id.clone()));
        }
        for c in &item.tool_calls {
            e.tool_calls
                .insert((p.clone(), s.clone(), c.source_tool_call_id.clone()));
            if let Some(child) = &c.spawned_source_session_id {
                e.spawns.insert(
                    (p.clone(), child.clone()),
                    (s.clone(), c.source_tool_call_id.clone()),
                );
            }
        }
        if item.session.is_subagent
            && let Some(parent) = &item.session.parent_source_session_id
        {
            e.parents.insert((p.clone(), s.clone()), parent.clone());
        }
    }
    e
}

fn label(conn: &Connection, provider: &str, session: &str) -> Option<String> {
    conn.query_row(
        "SELECT session_label FROM session_imports WHERE source_provider = ?1 AND source_session_id = ?2",
        [provider, session],
        |r| r.get(0),
    )
    .optional()
    .unwrap()
}

type SessionRow = (i64, Option<String>, Option<String>);

fn session_row(conn: &Connection, label: &str) -> SessionRow {
    conn.query_row(
        "SELECT is_subagent, parent_session_label, spawn_tool_call_id FROM sessions WHERE label = ?1",
        [label],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn count(conn: &Connection, sql: &str) -> usize {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as usize
}

#[test]
fn every_sample_imports_with_its_lineage() {
    let Some(samples) = samples_dir() else {
        eprintln!("e2e_conformance: NEX_SAMPLES_DIR unset or empty; skipped");
        return;
    };
    let tree = sample_tree(&samples);
    let ledger = tree.ledger("agents.db");
    let run = backfill(&tree, &ledger);
    assert_clean(&run);
    let expected = scan(&tree);
    assert!(!expected.sessions.is_empty(), "no sample session found");
    // Every provider with samples is in the comparison.
    for (dir, provider) in [
        ("claude-code", "claude-code"),
        ("codex", "codex"),
        ("gemini", "gemini-cli"),
    ] {
        let mut files = Vec::new();
        files_under(&samples.join(dir), &mut files);
        if !files.is_empty() {
            assert!(
                expected.sessions.iter().any(|(p, _)| p == provider),
                "no {provider} session among the samples"
            );
        }
    }
    let conn = open(&ledger);

    // Counts: exactly what the worker's parsers report, nothing lost, nothing duplicated.
    assert_eq!(
        count(&conn, "SELECT count(*) FROM session_imports"),
        expected.sessions.len()
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM sessions"),
        expected.sessions.len()
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages"),
        expected.messages.len()
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM tool_calls"),
        expected.tool_calls.len()
    );
    for (p, s, m) in &expected.messages {
        let id = scoped_id(IdKind::Message, "aix", p, s, m);
        assert_eq!(
            count(
                &conn,
                &format!("SELECT count(*) FROM messages WHERE id = '{id}'")
            ),
            1,
            "message {m} of {s}"
        );
    }

    // Lineage: parent label, and the spawning call's row both ways. Every broken link is
    // collected so one failure names them all.
    let mut checked_spawns = 0;
    let mut broken = Vec::new();
    for ((p, child), parent) in &expected.parents {
        let child_label = label(&conn, p, child).expect("child imported");
        let parent_label = label(&conn, p, parent);
        let (is_subagent, parent_col, spawn_col) = session_row(&conn, &child_label);
        if is_subagent != 1 {
            broken.push(format!("{child}: is_subagent={is_subagent}"));
        }
        if let Some(parent_label) = &parent_label
            && parent_col.as_deref() != Some(parent_label.as_str())
        {
            broken.push(format!("{child}: parent_session_label={parent_col:?}"));
        }
        if let Some((spawner, call)) = expected.spawns.get(&(p.clone(), child.clone())) {
            assert_eq!(spawner, parent, "{child}: spawned by its parent");
            let call_row = scoped_id(IdKind::Tool, "aix", p, spawner, call);
            if spawn_col.as_deref() != Some(call_row.as_str()) {
                broken.push(format!(
                    "{child}: spawn_tool_call_id={spawn_col:?}, expected {call_row}"
                ));
            }
            let spawned: Option<String> = conn
                .query_row(
                    "SELECT spawned_session_label FROM tool_calls WHERE id = ?1",
                    [&call_row],
                    |r| r.get(0),
                )
                .unwrap();
            if spawned.as_deref() != Some(child_label.as_str()) {
                broken.push(format!(
                    "{child}: parent call {call} spawned_session_label={spawned:?}"
                ));
            }
            checked_spawns += 1;
        }
    }
    assert!(broken.is_empty(), "broken lineage: {broken:#?}");
    // The named lineages of the samples, when those samples are present.
    let named = [
        (
            "claude-code",
            "55550000-0000-4000-8000-000000000001/agent-showcol1",
        ),
        (
            "claude-code",
            "ae4a77f8-aedd-4bc1-888f-c94edc91af04/agent-aac57f5",
        ),
        ("codex", "33333333-3333-4333-8333-333333333333"),
    ];
    for (p, child) in named {
        if expected
            .sessions
            .contains(&(p.to_owned(), child.to_owned()))
        {
            assert!(
                expected
                    .spawns
                    .contains_key(&(p.to_owned(), child.to_owned())),
                "{child}: spawn link expected in the samples"
            );
            let l = label(&conn, p, child).unwrap();
            let (_, parent_col, spawn_col) = session_row(&conn, &l);
            assert!(parent_col.is_some() && spawn_col.is_some(), "{child}");
        }
    }
    eprintln!(
        "e2e_conformance: {} sessions, {} messages, {} tool calls, {} spawn links checked",
        expected.sessions.len(),
        expected.messages.len(),
        expected.tool_calls.len(),
        checked_spawns
    );
}
