//! The ledger's query columns (migration 0003) and the one meaning of its token columns, through
//! the built `aix` and `nex`: `session_label` on every turn, message and tool call, `provider`
//! and `workspace_path` on sessions, written by a backfill, by the tail, by a rule-13
//! replacement and by the migration of a ledger the previous schema wrote; `input_tokens`
//! uncached for every provider; and the README's example queries, run as the README prints them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nex::aix::figures::SessionFigures;
use nex::ledger::{self, migrate};
use nex::protocol::RunMode;
use rusqlite::Connection;

use crate::e2e_support::{
    Tree, assert_clean, backfill, bins, canonical, files_under, first_difference, fixture_files,
    open, worker,
};
use crate::import_mapping::copy_rows;
use crate::import_support::dump_table;

/// Every fixture file of the line-file providers as (destination in a [`Tree`], source):
/// Claude Code and Codex ([`fixture_files`]) and Gemini CLI.
fn all_fixture_files() -> Vec<(PathBuf, PathBuf)> {
    let mut out = fixture_files();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemini/tmp");
    let mut gemini = Vec::new();
    files_under(&root, &mut gemini);
    for p in gemini {
        let rel = p.strip_prefix(&root).unwrap().to_owned();
        out.push((Path::new("gemini/tmp").join(rel), p));
    }
    out
}

fn fixture_tree() -> Tree {
    let tree = Tree::new();
    for (rel, src) in all_fixture_files() {
        let dest = tree.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(src, dest).unwrap();
    }
    tree
}

/// The fixture tree and the ledger one backfill of it gives.
fn backfilled() -> (Tree, PathBuf) {
    let tree = fixture_tree();
    let ledger = tree.ledger("agents.db");
    assert_clean(&backfill(&tree, &ledger));
    (tree, ledger)
}

fn n(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every row names its session: turns, messages and tool calls carry a label (messages and tool
/// calls their turn's), sessions their import's provider and their workspace.
fn assert_query_columns(conn: &Connection) {
    for table in ["turns", "messages", "tool_calls"] {
        let missing = n(
            conn,
            &format!("SELECT COUNT(*) FROM {table} WHERE session_label IS NULL"),
        );
        assert_eq!(missing, 0, "{table} rows without a session_label");
        assert!(n(conn, &format!("SELECT COUNT(*) FROM {table}")) > 0);
    }
    for table in ["messages", "tool_calls"] {
        let other = n(
            conn,
            &format!(
                "SELECT COUNT(*) FROM {table} r JOIN turns t ON t.id = r.turn_id
                 WHERE r.session_label IS NOT t.session_label"
            ),
        );
        assert_eq!(
            other, 0,
            "{table} rows labelled with another session than their turn's"
        );
    }
    let provider = n(
        conn,
        "SELECT COUNT(*) FROM sessions s WHERE s.provider IS NOT (
            SELECT si.source_provider FROM session_imports si WHERE si.session_label = s.label)",
    );
    assert_eq!(provider, 0, "sessions.provider differs from the import's");
    // The routing key is the workspace, else the source's project name (only Gemini CLI's
    // `tmp/<project>` folder, which is no path).
    let workspace = n(
        conn,
        "SELECT COUNT(*) FROM sessions WHERE workspace_path IS NOT routing_key
            AND NOT (workspace_path IS NULL AND provider = 'gemini-cli')",
    );
    assert_eq!(
        workspace, 0,
        "sessions.workspace_path differs from routing_key"
    );
    // (The Gemini CLI fixtures have no project registry, so no folder.)
    for provider in ["claude-code", "codex"] {
        let with_workspace = n(
            conn,
            &format!(
                "SELECT COUNT(*) FROM sessions WHERE provider = '{provider}'
                 AND workspace_path IS NOT NULL"
            ),
        );
        assert!(with_workspace > 0, "no {provider} session with a workspace");
    }
}

/// Per provider: (turns with cache reads, turns whose columns add up to more than the
/// provider's total). Input, cache reads, cache writes and output are disjoint parts of the
/// total; Gemini's thoughts are outside its output (Codex's reasoning is inside it), and Claude
/// Code's total is exactly the four.
fn token_parts(conn: &Connection) -> Vec<(String, i64, i64, i64)> {
    conn.prepare(
        "SELECT s.provider, SUM(t.cached_input_tokens > 0),
            SUM(COALESCE(t.input_tokens, 0) + COALESCE(t.cached_input_tokens, 0)
                + COALESCE(t.cache_write_tokens, 0) + COALESCE(t.output_tokens, 0)
                + CASE s.provider WHEN 'gemini-cli' THEN COALESCE(t.reasoning_tokens, 0) ELSE 0 END
                > t.total_tokens),
            SUM(COALESCE(t.input_tokens, 0) + COALESCE(t.cached_input_tokens, 0)
                + COALESCE(t.cache_write_tokens, 0) + COALESCE(t.output_tokens, 0)
                != t.total_tokens)
         FROM turns t JOIN sessions s ON s.label = t.session_label
         WHERE t.total_tokens IS NOT NULL
         GROUP BY s.provider ORDER BY s.provider",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Regression: Codex and Gemini CLI stored their input count, cache reads included, as
/// `input_tokens`, so input + cache reads counted the cached tokens twice.
#[test]
fn backfill_fills_the_query_columns_and_input_tokens_are_uncached_for_every_provider() {
    let (_tree, ledger) = backfilled();
    let conn = open(&ledger);
    assert_query_columns(&conn);
    let parts = token_parts(&conn);
    let providers: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(providers, ["claude-code", "codex", "gemini-cli"]);
    for (provider, cached, over, _) in &parts {
        assert!(*cached > 0, "{provider}: no turn with cache reads to check");
        assert_eq!(*over, 0, "{provider}: input + cache reads exceed the total");
    }
    // Claude Code has no total of its own: it is the sum of the four.
    assert_eq!(parts[0].3, 0, "claude-code total != its parts");
    // The fixtures' figures (tests/fixtures/codex/main: 1000 input with 200 cached, then 500
    // with 100; gemini proj-a: 1000 + 1100 input with 200 + 900 cached).
    let session_input = |id: &str| -> (i64, i64) {
        conn.query_row(
            "SELECT SUM(t.input_tokens), SUM(t.cached_input_tokens)
             FROM turns t JOIN sessions s ON s.label = t.session_label
             WHERE s.origin_session_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(
        session_input("0199aaaa-0000-7000-8000-000000000001"),
        (1200, 300)
    );
    assert_eq!(
        session_input("aaaa0001-0000-4000-8000-000000000001"),
        (3000, 1100)
    );
}

/// Polls `ledger` until its canonical dump equals `expected`, while it keeps changing (a loaded
/// machine is slow, not wrong); 15 s without a change is a stall.
fn converge(ledger: &Path, expected: &str) -> String {
    let mut last_change = Instant::now();
    let mut got = String::new();
    while last_change.elapsed() < Duration::from_secs(15) {
        if ledger.exists() {
            let now = canonical(&open(ledger));
            if now != got {
                got = now;
                last_change = Instant::now();
            }
            if got == expected {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    got
}

/// The tail writes the query columns of partial items (appended turns) as a backfill does.
#[test]
fn the_tail_fills_the_query_columns_of_appended_turns() {
    let tree = Tree::new();
    let mut rest = Vec::new();
    for (rel, src) in all_fixture_files() {
        let dest = tree.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let bytes = std::fs::read(src).unwrap();
        // Line files: the first half of their lines now, the rest once the tail has read it.
        let lines = bytes.iter().filter(|b| **b == b'\n').count();
        let cut = if dest.extension().is_some_and(|e| e == "jsonl") && lines >= 2 {
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(lines / 2 - 1)
                .map_or(bytes.len(), |(i, _)| i + 1)
        } else {
            bytes.len()
        };
        std::fs::write(&dest, &bytes[..cut]).unwrap();
        if cut < bytes.len() {
            rest.push((dest, bytes[cut..].to_vec()));
        }
    }
    assert!(rest.len() >= 10, "too few files to append to");
    let half_reference = tree.ledger("half.db");
    assert_clean(&backfill(&tree, &half_reference));
    let half = canonical(&open(&half_reference));

    let ledger = tree.ledger("tail.db");
    let mut pair = worker(&tree, &ledger, RunMode::Tail, Vec::new());
    let got = converge(&ledger, &half);
    assert!(
        got == half,
        "tail != backfill of the first halves: {}",
        first_difference(&got, &half)
    );
    for (dest, bytes) in &rest {
        let mut f = std::fs::OpenOptions::new().append(true).open(dest).unwrap();
        f.write_all(bytes).unwrap();
    }
    let full_reference = tree.ledger("full.db");
    assert_clean(&backfill(&tree, &full_reference));
    let full = canonical(&open(&full_reference));
    let got = converge(&ledger, &full);
    pair.stop();
    assert_clean(&pair.finish().unwrap());
    assert!(
        got == full,
        "tail != backfill: {}",
        first_difference(&got, &full)
    );
    assert_query_columns(&open(&ledger));
}

/// Regression: a ledger of schema 0002 has no `session_label` on messages and tool calls, no
/// session provider or workspace, and Codex and Gemini CLI input with the cache reads. The
/// migration gives exactly the rows the import writes now; the next backfill then reads Codex
/// and Gemini CLI whole under their new mapping version (rule 13) and changes no row but the
/// versions: the tokens are not subtracted twice.
#[test]
fn a_ledger_of_schema_0002_is_migrated_to_what_the_import_writes() {
    let (tree, reference) = backfilled();
    let current = open(&reference);
    // The ledger the previous build wrote from the same files: schema 0001 + 0002, with the
    // previous Codex and Gemini CLI mapping (version 2: input tokens with the cache reads).
    let path = tree.ledger("old.db");
    {
        let mut old = Connection::open(&path).unwrap();
        migrate(&mut old, &migrate::AGENTS[..2]).unwrap();
        old.execute_batch("PRAGMA foreign_keys = OFF;").unwrap();
        copy_rows(&current, &old);
        old.execute_batch(
            "UPDATE turns SET input_tokens = input_tokens + cached_input_tokens
                 WHERE cached_input_tokens > 0 AND session_label IN (SELECT session_label
                     FROM session_imports WHERE source_provider IN ('codex', 'gemini-cli'));
             UPDATE session_imports SET mapping_version = 2, source_session_fingerprint = 'v2'
                 WHERE source_provider IN ('codex', 'gemini-cli');",
        )
        .unwrap();
        let before: i64 = n(&old, "SELECT COUNT(*) FROM pragma_table_info('messages')");
        assert_eq!(before, 10, "the old ledger has the old messages table");
    }

    let migrated = ledger::open_agents(&path).unwrap();
    let version: u32 = migrated
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version as usize, migrate::AGENTS.len());
    assert_query_columns(&migrated);
    for (provider, _, over, _) in token_parts(&migrated) {
        assert_eq!(over, 0, "{provider}: input + cache reads exceed the total");
    }
    for (table, order) in [
        ("sessions", "label"),
        ("turns", "id"),
        ("threads", "turn_id"),
        ("messages", "id"),
        ("tool_calls", "id"),
    ] {
        let (got, want) = (
            dump_table(&migrated, table, order, &[]),
            dump_table(&current, table, order, &[]),
        );
        assert!(got == want, "{table}: {}", first_difference(&got, &want));
    }
    drop(migrated);

    let upgrade = backfill(&tree, &path);
    assert_clean(&upgrade);
    let replaced = n(
        &current,
        "SELECT COUNT(*) FROM session_imports WHERE source_provider IN ('codex', 'gemini-cli')",
    );
    assert_eq!(upgrade.report.upserted as i64, replaced);
    assert_eq!(upgrade.report.imported, 0);
    let (got, want) = (canonical(&open(&path)), canonical(&current));
    assert!(got == want, "{}", first_difference(&got, &want));
}

/// The migration's edge cases, on rows the import would not write today: cache reads above the
/// input clamp to 0 (never negative), other providers' tokens and rows without cache figures are
/// untouched, a session without an import mapping gets its provider from `origin`, a routing key
/// that came from an item's `project` is no workspace, and rows of a turn nobody could
/// attribute stay unattributed.
#[test]
fn the_migration_clamps_and_keeps_what_it_cannot_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    {
        let mut old = Connection::open(&path).unwrap();
        migrate(&mut old, &migrate::AGENTS[..2]).unwrap();
        old.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO sessions (label, thread_id, persona_id, routing_key, origin, created_at,
                 updated_at) VALUES
                 ('cx', 'c1', 'main', '/w/cx', 'aix:codex', 1, 1),
                 ('gm', 'g1', 'main', 'proj-hash', 'aix:gemini-cli', 1, 1),
                 ('cc', 'k1', 'main', '/w/cc', 'aix:claude-code', 1, 1);
             INSERT INTO session_imports (source, source_provider, source_session_id,
                 source_session_fingerprint, session_label, imported_at, updated_at) VALUES
                 ('aix', 'codex', 'x', 'f', 'cx', 1, 1),
                 ('aix', 'claude-code', 'k', 'f', 'cc', 1, 1);
             INSERT INTO turns (id, started_at, input_tokens, cached_input_tokens, total_tokens,
                 workspace_path, session_label) VALUES
                 ('c1', 1, 100, 30, 110, '/w/cx', 'cx'),
                 ('c2', 2, 10, 40, 50, '/w/cx', 'cx'),
                 ('c3', 3, 10, NULL, 12, '/w/cx', 'cx'),
                 ('g1', 1, 500, 500, 510, NULL, 'gm'),
                 ('k1', 1, 5, 900, 910, '/w/cc', 'cc'),
                 ('lost', 1, 7, 3, 10, NULL, NULL);
             INSERT INTO messages (id, turn_id, role, sequence, created_at) VALUES
                 ('m1', 'c2', 'user', 0, 1), ('m2', 'lost', 'user', 0, 1);
             INSERT INTO tool_calls (id, turn_id, tool_name, params_json, started_at, sequence)
                 VALUES ('t1', 'g1', 'shell', '{}', 1, 0), ('t2', 'lost', 'shell', '{}', 1, 0);",
        )
        .unwrap();
    }
    let conn = ledger::open_agents(&path).unwrap();
    let col = |sql: &str| -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| {
                let cells: Vec<String> = (0..r.as_ref().column_count())
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        v => v.as_str().unwrap().to_owned(),
                    })
                    .collect();
                Ok(cells.join(" "))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        col("SELECT id, input_tokens, cached_input_tokens FROM turns ORDER BY id"),
        [
            "c1 70 30",
            "c2 0 40",
            "c3 10 NULL",
            "g1 0 500",
            "k1 5 900",
            "lost 7 3"
        ]
    );
    assert_eq!(
        col("SELECT label, provider, workspace_path FROM sessions ORDER BY label"),
        [
            "cc claude-code /w/cc",
            "cx codex /w/cx",
            "gm gemini-cli NULL"
        ]
    );
    assert_eq!(
        col("SELECT id, session_label FROM messages ORDER BY id"),
        ["m1 cx", "m2 NULL"]
    );
    assert_eq!(
        col("SELECT id, session_label FROM tool_calls ORDER BY id"),
        ["t1 gm", "t2 NULL"]
    );
}

/// The example queries of README "The ledger": each ```sql block whose first line is
/// `-- example: NAME`, by name.
fn readme_examples() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let mut out = Vec::new();
    let mut block: Option<(String, String)> = None;
    for line in readme.lines() {
        match &mut block {
            None if line.trim() == "```sql" => block = Some((String::new(), String::new())),
            None => {}
            Some((name, sql)) if line.trim() == "```" => {
                if !name.is_empty() {
                    out.push((std::mem::take(name), std::mem::take(sql)));
                }
                block = None;
            }
            Some((name, sql)) => {
                if let Some(n) = line.trim().strip_prefix("-- example: ") {
                    *name = n.trim().to_owned();
                } else {
                    sql.push_str(line);
                    sql.push('\n');
                }
            }
        }
    }
    out
}

fn example(name: &str) -> String {
    readme_examples()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("README has no example query {name}"))
        .1
}

/// `aix scan --sessions` of the tree: the parsers' own figures per session.
fn scan_figures(tree: &Tree) -> Vec<SessionFigures> {
    let out = Command::new(bins().aix)
        .args(["scan", "--sessions"])
        .args(tree.roots())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The README's example queries run as printed, against a ledger of the fixtures, and give the
/// parsers' own figures (so the README cannot drift from the schema).
#[test]
fn the_readme_example_queries_run_and_give_the_sources_figures() {
    let names: Vec<String> = readme_examples().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["transcript", "tokens_per_day", "sessions_per_project"]
    );
    let (tree, ledger) = backfilled();
    let conn = open(&ledger);
    let figures = scan_figures(&tree);

    // A session's transcript, in order: the Codex fixture `main`.
    let label: String = conn
        .query_row(
            "SELECT label FROM sessions WHERE origin_session_id = ?1",
            ["0199aaaa-0000-7000-8000-000000000001"],
            |r| r.get(0),
        )
        .unwrap();
    let rows: Vec<(String, Option<String>)> = conn
        .prepare(&example("transcript"))
        .unwrap()
        .query_map(&[(":label", &label)], |r| {
            Ok((r.get("role")?, r.get("content")?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let o = |s: &str| Some(s.to_owned());
    assert_eq!(
        rows,
        [
            ("user".to_owned(), o("Add a test for parse().")),
            ("assistant".to_owned(), None),
            ("assistant".to_owned(), o("Added test_parse.")),
            (
                "user".to_owned(),
                o("Run it, and ask a helper to check the docs.")
            ),
            (
                "assistant".to_owned(),
                o("Tests pass; a helper is checking the docs.")
            ),
        ]
    );

    // Tokens per day and provider: summed over the days, the parsers' figures per provider.
    let mut per_provider: std::collections::BTreeMap<String, [i64; 5]> = Default::default();
    let mut stmt = conn.prepare(&example("tokens_per_day")).unwrap();
    let mut q = stmt.query([]).unwrap();
    let mut days = 0;
    while let Some(r) = q.next().unwrap() {
        days += 1;
        let day: String = r.get("day").unwrap();
        assert_eq!(day.len(), 10, "a day is YYYY-MM-DD: {day}");
        let sums = per_provider.entry(r.get("provider").unwrap()).or_default();
        for (i, c) in ["input", "cached_input", "cache_write", "output", "total"]
            .iter()
            .enumerate()
        {
            sums[i] += r.get::<_, Option<i64>>(*c).unwrap().unwrap_or(0);
        }
    }
    assert!(days >= 3);
    let mut expected: std::collections::BTreeMap<String, [i64; 5]> = Default::default();
    for f in &figures {
        let e = expected.entry(f.provider.clone()).or_default();
        e[0] += f.input_tokens;
        e[1] += f.cached_input_tokens;
        e[2] += f.cache_write_tokens;
        e[3] += f.output_tokens;
        e[4] += f.total_tokens;
    }
    assert_eq!(per_provider, expected);

    // Sessions per project: every session counted once, under its workspace.
    let mut counted: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    let mut stmt = conn.prepare(&example("sessions_per_project")).unwrap();
    let mut q = stmt.query([]).unwrap();
    let mut cx = None;
    while let Some(r) = q.next().unwrap() {
        let provider: String = r.get("provider").unwrap();
        let workspace: Option<String> = r.get("workspace_path").unwrap();
        let (sessions, subagents): (i64, i64) =
            (r.get("sessions").unwrap(), r.get("subagents").unwrap());
        if workspace.as_deref() == Some("/work/cx") {
            cx = Some((sessions, subagents));
        }
        let c = counted.entry(provider).or_default();
        c.0 += sessions;
        c.1 += subagents;
    }
    let mut expected: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for f in &figures {
        let e = expected.entry(f.provider.clone()).or_default();
        if f.is_subagent {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
    assert_eq!(counted, expected);
    assert_eq!(
        cx,
        Some((2, 1)),
        "/work/cx: the main Codex fixture and its fork; its subagent"
    );
}
