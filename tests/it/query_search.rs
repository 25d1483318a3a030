//! Full-text search (`nex::query::search`, migration 0005): exact hits and their order,
//! snippets, every filter, malformed queries, and an index that follows the rows: a committed
//! tail append is searchable at once (an uncommitted one never), a rule-13 replacement leaves
//! no hit of the rows it removed, a VACUUM through `search_index::vacuum` keeps results, and a
//! damaged index is seen by `check` and repaired by `rebuild`.

use std::path::Path;

use nex::import::{IdKind, scoped_id};
use nex::ledger::{self, search_index};
use nex::query::search::{RoleFilter, SearchFilter, SearchHit, search};
use nex::query::{QueryError, open_existing, project_filter};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::import_support::{
    import_req, ledger, migrations_before, run_import, store_bodies_as_text,
};

const T0: i64 = 1_760_000_000_000;

fn msg(id: &str, turn: &str, role: &str, content: &str, seq: i64, at: i64) -> Value {
    json!({"sourceMessageId": id, "sourceTurnId": turn, "role": role, "content": content,
           "sequence": seq, "createdAtMs": T0 + at})
}

fn session(provider: &str, id: &str, workspace: &str, turns: Value, messages: Value) -> Value {
    json!({"sourceProvider": provider, "sourceSessionId": id,
           "sourceSessionFingerprint": format!("fp-{id}"),
           "session": {"createdAtMs": T0, "workspacePath": workspace},
           "turns": turns, "messages": messages})
}

fn turn(id: &str, at: i64) -> Value {
    json!({"sourceTurnId": id, "startedAtMs": T0 + at, "completedAtMs": T0 + at + 500})
}

/// Three sessions: `sa` (claude-code, /home/u/alpha) with a tool call, `sb` (codex,
/// /home/u/beta), `sc` (claude-code, /home/u/alpha/sub) whose prompt repeats `sa`'s word for
/// word, later.
pub fn fixture_items() -> Vec<Value> {
    let mut sa = session(
        "claude-code",
        "sa",
        "/home/u/alpha",
        json!([turn("t1", 1_000)]),
        json!([
            msg(
                "a1",
                "t1",
                "user",
                "how do I fix the parser crash",
                0,
                1_000
            ),
            msg(
                "a2",
                "t1",
                "assistant",
                "The tokenizer fails on empty input, so the parser never sees a token; \
                 guard the tokenizer and add a test for the empty case",
                1,
                1_200
            ),
        ]),
    );
    sa["messages"][1]["thinking"] = json!("maybe the lexer is at fault");
    sa["toolCalls"] = json!([{
        "sourceToolCallId": "c1", "sourceTurnId": "t1", "sourceMessageId": "a2",
        "toolName": "Bash", "paramsJson": {"command": "cargo test tokenizer"},
        "resultJson": {"stdout": "test tokenizer_empty ... ok"}, "status": "completed",
        "startedAtMs": T0 + 1_100, "completedAtMs": T0 + 1_150, "sequence": 0}]);
    let sb = session(
        "codex",
        "sb",
        "/home/u/beta",
        json!([turn("t1", 5_000)]),
        json!([
            msg("b1", "t1", "user", "parser crash again", 0, 5_000),
            msg("b2", "t1", "assistant", "an answer about widgets", 1, 5_100),
        ]),
    );
    let sc = session(
        "claude-code",
        "sc",
        "/home/u/alpha/sub",
        json!([turn("t1", 9_000)]),
        json!([msg(
            "c1",
            "t1",
            "user",
            "how do I fix the parser crash",
            0,
            9_000
        )]),
    );
    vec![sa, sb, sc]
}

fn fixture() -> Connection {
    let mut conn = ledger();
    run_import(&mut conn, import_req("k1", "backfill", fixture_items())).unwrap();
    conn
}

fn mid(provider: &str, session: &str, src: &str) -> String {
    scoped_id(IdKind::Message, "aix", provider, session, src)
}

fn find(conn: &Connection, query: &str) -> Vec<SearchHit> {
    find_with(
        conn,
        SearchFilter {
            query: query.into(),
            ..filter()
        },
    )
}

fn find_with(conn: &Connection, filter: SearchFilter) -> Vec<SearchHit> {
    search(conn, Path::new(":memory:"), &filter)
        .expect("search")
        .hits
}

fn filter() -> SearchFilter {
    SearchFilter {
        limit: 50,
        ..SearchFilter::default()
    }
}

/// (message id, role) of each hit, in order.
fn ids(hits: &[SearchHit]) -> Vec<(String, String)> {
    hits.iter()
        .map(|h| (h.message_id.clone().unwrap_or_default(), h.role.clone()))
        .collect()
}

fn pair(provider: &str, session: &str, src: &str, role: &str) -> (String, String) {
    (mid(provider, session, src), role.to_owned())
}

#[test]
fn hits_are_ranked_by_bm25_then_newest_first() {
    let conn = fixture();
    let hits = find(&conn, "parser crash");
    // Three prompts hold both words; the shortest (`sb`, three words) ranks first; the two
    // identical prompts tie and the newer (`sc`) comes first. The assistant's reply has
    // `parser` but not `crash`: no hit.
    assert_eq!(
        ids(&hits),
        vec![
            pair("codex", "sb", "b1", "user"),
            pair("claude-code", "sc", "c1", "user"),
            pair("claude-code", "sa", "a1", "user"),
        ]
    );
    assert!(hits[0].score > hits[1].score);
    assert_eq!(hits[1].score, hits[2].score, "identical prompts tie");
    assert!(hits[1].at > hits[2].at);

    let top = &hits[0];
    assert_eq!(top.provider.as_deref(), Some("codex"));
    assert_eq!(top.project.as_deref(), Some("/home/u/beta"));
    assert_eq!(top.session_id.as_deref(), Some("sb"));
    assert!(
        top.label
            .as_deref()
            .unwrap()
            .starts_with("import:codex:sb:")
    );
    assert_eq!(top.at, "2025-10-09T08:53:25.000Z");
    assert_eq!(top.snippet, "**parser** **crash** again");
    // The JSON line's fields, in the contract's order.
    let line = serde_json::to_string(top).unwrap();
    let keys = [
        "label",
        "session_id",
        "provider",
        "project",
        "turn_id",
        "message_id",
        "role",
        "at",
        "snippet",
        "score",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| line.find(&format!("\"{k}\":")).expect(k))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
    assert_eq!(
        serde_json::from_str::<Value>(&line)
            .unwrap()
            .as_object()
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn tool_calls_and_thinking_are_searchable() {
    let conn = fixture();
    // The tool call: role `tool`, message_id the message that made the call.
    let hits = find(&conn, "tokenizer_empty");
    assert_eq!(ids(&hits), vec![pair("claude-code", "sa", "a2", "tool")]);
    assert_eq!(
        hits[0].snippet,
        "{\"stdout\":\"test **tokenizer_empty** ... ok\"}"
    );
    assert_eq!(hits[0].at, "2025-10-09T08:53:21.100Z", "the call's start");
    // By tool name, with a column filter that only the tool-call index has.
    let hits = find(&conn, "tool_name:bash");
    assert_eq!(ids(&hits), vec![pair("claude-code", "sa", "a2", "tool")]);
    assert_eq!(hits[0].snippet, "**Bash**");
    // Thinking, and a column filter that only the message index has.
    assert_eq!(
        ids(&find(&conn, "lexer")),
        vec![pair("claude-code", "sa", "a2", "assistant")]
    );
    assert_eq!(
        ids(&find(&conn, "thinking:lexer")),
        ids(&find(&conn, "lexer"))
    );
    assert!(find(&conn, "content:lexer").is_empty());
    // Both indexes: the reply's text and the call's parameters and result.
    let hits = find(&conn, "tokenizer");
    assert_eq!(
        ids(&hits)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            pair("claude-code", "sa", "a2", "assistant"),
            pair("claude-code", "sa", "a2", "tool")
        ]
        .into_iter()
        .collect()
    );
    let reply = hits.iter().find(|h| h.role == "assistant").unwrap();
    assert!(
        reply.snippet.contains("The **tokenizer** fails"),
        "{}",
        reply.snippet
    );
}

#[test]
fn query_syntax_phrases_prefixes_and_operators() {
    let conn = fixture();
    let all_prompts = ids(&find(&conn, "parser crash"));
    assert_eq!(ids(&find(&conn, "\"fix the parser\"")).len(), 2);
    assert_eq!(ids(&find(&conn, "\"parser fix\"")).len(), 0);
    assert_eq!(ids(&find(&conn, "pars* AND crash")), all_prompts);
    assert_eq!(ids(&find(&conn, "widgets OR lexer")).len(), 2);
    assert_eq!(
        ids(&find(&conn, "crash NOT again")),
        vec![
            pair("claude-code", "sc", "c1", "user"),
            pair("claude-code", "sa", "a1", "user")
        ]
    );
    assert_eq!(
        ids(&find(&conn, "tok*")).len(),
        2,
        "prefix over both indexes"
    );
}

#[test]
fn filters_provider_project_time_role() {
    let conn = fixture();
    let with = |f: SearchFilter| {
        ids(&find_with(
            &conn,
            SearchFilter {
                query: "parser".into(),
                ..f
            },
        ))
    };
    assert_eq!(
        with(SearchFilter {
            provider: Some("codex".into()),
            ..filter()
        }),
        vec![pair("codex", "sb", "b1", "user")]
    );
    // A project and everything under it; a sibling with the same prefix is not under it.
    let alpha = with(SearchFilter {
        project: Some(project_filter("/home/u/alpha/")),
        ..filter()
    });
    assert_eq!(alpha.len(), 3);
    assert!(alpha.iter().all(|(id, _)| !id.contains("codex")));
    assert_eq!(
        with(SearchFilter {
            project: Some("/home/u/alpha/sub".into()),
            ..filter()
        }),
        vec![pair("claude-code", "sc", "c1", "user")]
    );
    assert!(
        with(SearchFilter {
            project: Some("/home/u/alp".into()),
            ..filter()
        })
        .is_empty()
    );
    // Time: [since, until).
    assert_eq!(
        with(SearchFilter {
            since_ms: Some(T0 + 5_000),
            until_ms: Some(T0 + 9_000),
            ..filter()
        }),
        vec![pair("codex", "sb", "b1", "user")]
    );
    // Roles.
    assert_eq!(
        with(SearchFilter {
            role: Some(RoleFilter::Assistant),
            ..filter()
        }),
        vec![pair("claude-code", "sa", "a2", "assistant")]
    );
    assert_eq!(
        ids(&find_with(
            &conn,
            SearchFilter {
                query: "tokenizer".into(),
                role: Some(RoleFilter::Tool),
                ..filter()
            }
        )),
        vec![pair("claude-code", "sa", "a2", "tool")]
    );
    assert_eq!(
        with(SearchFilter {
            role: Some(RoleFilter::User),
            ..filter()
        })
        .len(),
        3
    );
    // Limit and offset page through one order without overlap.
    let all = with(filter());
    let first = with(SearchFilter {
        limit: 2,
        ..filter()
    });
    let rest = with(SearchFilter {
        limit: 2,
        offset: 2,
        ..filter()
    });
    assert_eq!([first, rest].concat(), all);
}

#[test]
fn malformed_queries_are_search_query_invalid() {
    let conn = fixture();
    for bad in [
        "\"unbalanced",
        "AND",
        "parser AND",
        "(",
        "NEAR(",
        "*",
        "nosuch:word",
        "'",
        "",
        "  ",
    ] {
        let err = search(
            &conn,
            Path::new(":memory:"),
            &SearchFilter {
                query: bad.into(),
                ..filter()
            },
        )
        .expect_err(bad);
        assert!(
            matches!(err, QueryError::SearchQueryInvalid(_)),
            "{bad}: {err:?}"
        );
        assert_eq!(err.code().as_str(), "search_query_invalid");
    }
}

/// Hits of `zeppelin` in the message index, seen by `conn` (the writer, inside its transaction).
fn writer_hits(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'zeppelin'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_tail_append_is_searchable_once_committed_and_never_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    let mut writer = ledger::open_agents(&path).unwrap();
    run_import(&mut writer, import_req("k1", "backfill", fixture_items())).unwrap();
    let reader = open_existing(&path).unwrap();
    // The reader maps the file (its reads of a committed append below go through the map and
    // the WAL).
    let mapped: i64 = reader
        .pragma_query_value(None, "mmap_size", |r| r.get(0))
        .unwrap();
    assert!(mapped > 0, "mmap_size {mapped}");
    let zeppelin = || {
        search(
            &reader,
            &path,
            &SearchFilter {
                query: "zeppelin".into(),
                ..filter()
            },
        )
        .unwrap()
        .hits
    };

    let mut append = session(
        "codex",
        "sb",
        "/home/u/beta",
        json!([turn("t2", 6_000)]),
        json!([msg("b3", "t2", "user", "now the zeppelin test", 2, 6_000)]),
    );
    append["sourceSessionFingerprint"] = json!("fp-sb-2");
    let req: nex::protocol::ImportRequest =
        serde_json::from_value(import_req("k2", "tail", vec![append])).unwrap();
    let tx = writer.transaction().unwrap();
    nex::import::import(&tx, &req, &crate::import_support::opts()).unwrap();
    assert!(
        zeppelin().is_empty(),
        "an uncommitted turn is never searchable"
    );
    assert_eq!(
        writer_hits(&tx),
        0,
        "before the flush, not even the writer's own transaction finds it"
    );
    search_index::flush(&tx).unwrap();
    assert_eq!(writer_hits(&tx), 1, "indexed in the writing transaction");
    assert!(
        zeppelin().is_empty(),
        "an uncommitted turn is never searchable, even once indexed"
    );
    tx.commit().unwrap();
    let hits = zeppelin();
    assert_eq!(ids(&hits), vec![pair("codex", "sb", "b3", "user")]);
    assert_eq!(hits[0].snippet, "now the **zeppelin** test");
    assert!(search_index::check(&writer).unwrap());
}

#[test]
fn a_rule_13_replacement_leaves_no_hit_of_removed_rows() {
    let mut conn = ledger();
    let old = session(
        "codex",
        "sr",
        "/w",
        json!([turn("t1", 1), turn("t2", 2)]),
        json!([
            msg("r1", "t1", "user", "keep this prompt", 0, 1),
            msg("r2", "t2", "assistant", "obsolete mapping text", 1, 2)
        ]),
    );
    run_import(&mut conn, import_req("k1", "backfill", vec![old])).unwrap();
    assert_eq!(find(&conn, "obsolete").len(), 1);
    let mut new = session(
        "codex",
        "sr",
        "/w",
        json!([turn("t1", 1)]),
        json!([msg(
            "r1",
            "t1",
            "user",
            "keep this prompt, now reworded",
            0,
            1
        )]),
    );
    new["sourceSessionFingerprint"] = json!("fp-sr-2");
    new["mappingVersion"] = json!(2);
    new["wholeSession"] = json!(true);
    run_import(&mut conn, import_req("k2", "backfill", vec![new])).unwrap();
    assert!(
        find(&conn, "obsolete").is_empty(),
        "the removed message left the index"
    );
    assert_eq!(
        ids(&find(&conn, "reworded")),
        vec![pair("codex", "sr", "r1", "user")]
    );
    assert!(search_index::check(&conn).unwrap());
}

#[test]
fn vacuum_keeps_results_and_rebuild_repairs_a_damaged_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    let mut conn = ledger::open_agents(&path).unwrap();
    run_import(&mut conn, import_req("k1", "backfill", fixture_items())).unwrap();
    // Gaps in the rowids, which a VACUUM may close.
    conn.execute(
        "DELETE FROM messages WHERE content = 'an answer about widgets'",
        [],
    )
    .unwrap();
    let before = find(&conn, "parser OR tokenizer OR lexer");
    search_index::vacuum(&mut conn).unwrap();
    assert!(search_index::check(&conn).unwrap());
    assert_eq!(find(&conn, "parser OR tokenizer OR lexer"), before);
    assert!(find(&conn, "widgets").is_empty());

    // An index out of step with its table (as after a VACUUM by another tool): seen, repaired.
    let (rowid, content): (i64, String) = conn
        .query_row(
            "SELECT rowid, content FROM messages WHERE content LIKE 'parser crash%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rowid, content, thinking) VALUES ('delete', ?1, ?2, NULL)",
        rusqlite::params![rowid, content],
    )
    .unwrap();
    assert!(!search_index::check(&conn).unwrap());
    assert_eq!(find(&conn, "again").len(), 0);
    search_index::rebuild(&mut conn).unwrap();
    assert!(search_index::check(&conn).unwrap());
    assert_eq!(find(&conn, "again").len(), 1);
}

#[test]
fn migration_0005_indexes_the_rows_already_there() {
    // A ledger of schema 0002 with rows, then the search migration.
    let mut conn = Connection::open_in_memory().unwrap();
    let before = migrations_before("0005_search");
    ledger::migrate(&mut conn, &before).unwrap();
    run_import(&mut conn, import_req("k1", "backfill", fixture_items())).unwrap();
    assert!(!nex::query::has_table(&conn, "messages_fts").unwrap());
    ledger::migrate(&mut conn, ledger::migrate::AGENTS).unwrap();
    assert!(search_index::check(&conn).unwrap());
    assert_eq!(find(&conn, "parser crash").len(), 3);
    assert_eq!(find(&conn, "tokenizer_empty").len(), 1);
}

/// A session whose one tool call has a long result (the JSON of a Bash output of about 20,000
/// characters): `headword` in its first 1,024 characters, `middleword` in neither end,
/// `tailword` in its last 512, and `linestart` right after a line break (`\n` in the JSON).
fn long_result_item() -> Value {
    let mut out = String::from("headword begins the output\nlinestart follows a line break\n");
    while out.len() < 10_000 {
        out.push_str("filler line of a long build log\n");
    }
    out.push_str("the middleword sits in the middle\n");
    while out.len() < 20_000 {
        out.push_str("more filler of the same log\n");
    }
    out.push_str("tailword: 3 tests failed\n");
    let mut item = session(
        "claude-code",
        "long",
        "/home/u/gamma",
        json!([turn("t1", 20_000)]),
        json!([msg("l1", "t1", "user", "run the build", 0, 20_000)]),
    );
    item["toolCalls"] = json!([{
        "sourceToolCallId": "lc1", "sourceTurnId": "t1", "sourceMessageId": "l1",
        "toolName": "Bash", "paramsJson": {"command": "cargo build"},
        "resultJson": {"stdout": out}, "status": "completed",
        "startedAtMs": T0 + 20_100, "completedAtMs": T0 + 20_150, "sequence": 0}]);
    item
}

#[test]
fn a_long_tool_result_is_searchable_in_its_first_1024_and_last_512_characters() {
    let mut conn = ledger();
    run_import(
        &mut conn,
        import_req("k1", "backfill", vec![long_result_item()]),
    )
    .unwrap();
    let call = pair("claude-code", "long", "l1", "tool");
    let hits = find(&conn, "headword");
    assert_eq!(ids(&hits), vec![call.clone()]);
    assert!(
        hits[0].snippet.contains("**headword** begins the output"),
        "{}",
        hits[0].snippet
    );
    assert_eq!(ids(&find(&conn, "tailword")), vec![call.clone()]);
    assert_eq!(ids(&find(&conn, "\"3 tests failed\"")), vec![call.clone()]);
    // The word after a JSON-escaped line break is a word of its own.
    let hits = find(&conn, "linestart");
    assert_eq!(ids(&hits), vec![call]);
    assert!(
        hits[0].snippet.contains("**linestart** follows"),
        "{}",
        hits[0].snippet
    );
    // The middle is stored (and exported), not searchable.
    assert!(find(&conn, "middleword").is_empty());
    let stored: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM tool_calls WHERE nex_text(result_json) LIKE '%middleword%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 1);
    assert!(search_index::check(&conn).unwrap());
}

/// The bytes of the tool-call index's segments: unchanged when nothing was re-indexed.
fn tool_index_bytes(conn: &Connection) -> (i64, i64) {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(block)), 0) FROM tool_calls_fts_data",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn an_update_that_leaves_the_indexed_text_alone_leaves_the_index_alone() {
    let mut conn = ledger();
    run_import(
        &mut conn,
        import_req("k1", "backfill", vec![long_result_item()]),
    )
    .unwrap();
    let before = tool_index_bytes(&conn);
    conn.execute(
        "UPDATE tool_calls SET status = 'failed', completed_at = completed_at + 1",
        [],
    )
    .unwrap();
    assert_eq!(tool_index_bytes(&conn), before);
    // A change of the text is re-indexed: the old words go, the new ones come.
    conn.execute(
        "UPDATE tool_calls SET result_json = json_object('stdout', 'replacedword only')",
        [],
    )
    .unwrap();
    assert_ne!(tool_index_bytes(&conn), before);
    assert!(find(&conn, "headword").is_empty());
    assert_eq!(find(&conn, "replacedword").len(), 1);
    assert!(search_index::check(&conn).unwrap());
}

#[test]
fn migration_0007_reindexes_a_0006_ledger_to_the_bounded_rule() {
    let mut conn = Connection::open_in_memory().unwrap();
    let before = migrations_before("0007_search_bounded");
    assert!(before.last().unwrap().name.contains("0006"));
    ledger::migrate(&mut conn, &before).unwrap();
    let mut items = fixture_items();
    items.push(long_result_item());
    run_import(&mut conn, import_req("k1", "backfill", items)).unwrap();
    store_bodies_as_text(&conn);
    let whole = |conn: &Connection, word: &str| -> i64 {
        conn.query_row(
            "SELECT COUNT(*) FROM tool_calls_fts WHERE tool_calls_fts MATCH ?1",
            [word],
            |r| r.get(0),
        )
        .unwrap()
    };
    // 0006 indexed the whole result, and `\nlinestart` as the token `nlinestart`.
    assert_eq!(whole(&conn, "middleword"), 1);
    assert_eq!(whole(&conn, "linestart"), 0);
    ledger::migrate(&mut conn, ledger::migrate::AGENTS).unwrap();
    assert!(search_index::check(&conn).unwrap());
    assert!(find(&conn, "middleword").is_empty());
    for word in ["headword", "tailword", "linestart", "tokenizer_empty"] {
        assert_eq!(find(&conn, word).len(), 1, "{word}");
    }
    assert_eq!(find(&conn, "parser crash").len(), 3);
    // The triggers of 0007 keep it: a new long call is indexed by the same rule.
    let mut next = long_result_item();
    next["sourceSessionId"] = json!("long2");
    next["sourceSessionFingerprint"] = json!("fp-long2");
    run_import(&mut conn, import_req("k2", "backfill", vec![next])).unwrap();
    assert_eq!(find(&conn, "tailword").len(), 2);
    assert!(find(&conn, "middleword").is_empty());
    assert!(search_index::check(&conn).unwrap());
}

/// The highest rowid of `table`.
fn max_rowid(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT max(rowid) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// The marks of the flush (`search_mark`): the highest rowids the indexes cover.
fn marks(conn: &Connection) -> (i64, i64) {
    conn.query_row(
        "SELECT messages_mark, tool_calls_mark FROM search_mark",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// A second session like [`long_result_item`] whose one message holds `text`.
fn long_result_item_saying(id: &str, text: &str) -> Value {
    let mut next = long_result_item();
    next["sourceSessionId"] = json!(id);
    next["sourceSessionFingerprint"] = json!(format!("fp-{id}"));
    next["messages"] = json!([msg("l1", "t1", "user", text, 0, 20_000)]);
    next
}

#[test]
fn a_reused_rowid_after_deleting_the_highest_row_is_indexed_and_the_index_stays_exact() {
    let mut conn = ledger();
    let mut items = fixture_items();
    items.push(long_result_item());
    run_import(&mut conn, import_req("k1", "backfill", items)).unwrap();
    // The highest rows, already indexed (at the mark), deleted: the triggers take them out
    // and bring the marks down to the highest rows left (migration 0012).
    let (message_top, call_top) = (max_rowid(&conn, "messages"), max_rowid(&conn, "tool_calls"));
    assert_eq!(marks(&conn), (message_top, call_top));
    conn.execute("DELETE FROM tool_calls WHERE rowid = ?1", [call_top])
        .unwrap();
    conn.execute("DELETE FROM messages WHERE rowid = ?1", [message_top])
        .unwrap();
    assert_eq!(
        marks(&conn),
        (max_rowid(&conn, "messages"), max_rowid(&conn, "tool_calls"))
    );
    assert!(marks(&conn).0 < message_top && marks(&conn).1 < call_top);
    assert!(search_index::check(&conn).unwrap());
    assert!(find(&conn, "headword").is_empty());
    // New rows reuse those rowids, above the marks now: the flush indexes them, as any new row.
    let next = long_result_item_saying("long2", "run the reusedword build");
    let tx = conn.transaction().unwrap();
    let req: nex::protocol::ImportRequest =
        serde_json::from_value(import_req("k2", "backfill", vec![next])).unwrap();
    nex::import::import(&tx, &req, &crate::import_support::opts()).unwrap();
    assert_eq!(max_rowid(&tx, "messages"), message_top);
    assert_eq!(max_rowid(&tx, "tool_calls"), call_top);
    search_index::flush(&tx).unwrap();
    tx.commit().unwrap();
    assert_eq!(marks(&conn), (message_top, call_top));
    assert!(search_index::check(&conn).unwrap());
    assert_eq!(find(&conn, "reusedword").len(), 1);
    assert_eq!(find(&conn, "headword").len(), 1);
}

#[test]
fn deleting_indexed_and_unflushed_rows_together_leaves_no_reused_rowid_behind_the_mark() {
    let mut conn = ledger();
    run_import(&mut conn, import_req("k1", "backfill", fixture_items())).unwrap();
    let indexed_top = max_rowid(&conn, "messages");
    let tx = conn.transaction().unwrap();
    let import = |tx: &rusqlite::Transaction<'_>, key: &str, item: Value| {
        let req: nex::protocol::ImportRequest =
            serde_json::from_value(import_req(key, "backfill", vec![item])).unwrap();
        nex::import::import(tx, &req, &crate::import_support::opts()).unwrap();
    };
    // Rows above the mark, not indexed yet, then the top indexed row and all of those deleted,
    // the indexed one first: only the deletes of the unindexed rows leave the mark too high.
    import(
        &tx,
        "k2",
        long_result_item_saying("pending", "a pendingword row"),
    );
    assert!(max_rowid(&tx, "messages") > indexed_top);
    tx.execute(
        "DELETE FROM tool_calls WHERE message_id IN (SELECT id FROM messages WHERE rowid >= ?1)
            OR result_message_id IN (SELECT id FROM messages WHERE rowid >= ?1)",
        [indexed_top],
    )
    .unwrap();
    tx.execute("DELETE FROM messages WHERE rowid = ?1", [indexed_top])
        .unwrap();
    tx.execute("DELETE FROM messages WHERE rowid > ?1", [indexed_top])
        .unwrap();
    assert_eq!(marks(&tx).0, max_rowid(&tx, "messages"));
    // A new row takes the rowid of the deleted indexed one.
    import(
        &tx,
        "k3",
        long_result_item_saying("later", "a laterword row"),
    );
    assert_eq!(max_rowid(&tx, "messages"), indexed_top);
    search_index::flush(&tx).unwrap();
    tx.commit().unwrap();
    assert!(search_index::check(&conn).unwrap());
    assert_eq!(find(&conn, "laterword").len(), 1);
    assert!(find(&conn, "pendingword").is_empty());
}

#[test]
fn migration_0012_brings_a_mark_left_above_the_highest_row_down() {
    let mut conn = Connection::open_in_memory().unwrap();
    let before = migrations_before("0012_");
    assert!(before.len() >= 11, "0012 comes after 0011");
    ledger::migrate(&mut conn, &before).unwrap();
    let mut items = fixture_items();
    items.push(long_result_item());
    run_import(&mut conn, import_req("k1", "backfill", items)).unwrap();
    let (message_top, call_top) = (max_rowid(&conn, "messages"), max_rowid(&conn, "tool_calls"));
    // 0008's triggers leave the marks where they were.
    conn.execute("DELETE FROM tool_calls WHERE rowid = ?1", [call_top])
        .unwrap();
    conn.execute("DELETE FROM messages WHERE rowid = ?1", [message_top])
        .unwrap();
    assert_eq!(marks(&conn), (message_top, call_top));

    ledger::migrate(&mut conn, ledger::migrate::AGENTS).unwrap();
    assert_eq!(
        marks(&conn),
        (max_rowid(&conn, "messages"), max_rowid(&conn, "tool_calls"))
    );
    assert!(search_index::check(&conn).unwrap());
    let next = long_result_item_saying("long2", "run the reusedword build");
    run_import(&mut conn, import_req("k2", "backfill", vec![next])).unwrap();
    assert_eq!(max_rowid(&conn, "messages"), message_top);
    assert!(search_index::check(&conn).unwrap());
    assert_eq!(find(&conn, "reusedword").len(), 1);
    assert_eq!(find(&conn, "headword").len(), 1);
}

#[test]
fn rows_changed_or_deleted_before_their_flush_are_indexed_as_committed() {
    let mut conn = ledger();
    run_import(&mut conn, import_req("k1", "backfill", fixture_items())).unwrap();
    let mut next = long_result_item();
    next["messages"] = json!([
        msg("l1", "t1", "user", "first draftword", 0, 20_000),
        msg("l2", "t1", "assistant", "goneword soon deleted", 1, 20_100)
    ]);
    let tx = conn.transaction().unwrap();
    let req: nex::protocol::ImportRequest =
        serde_json::from_value(import_req("k2", "backfill", vec![next])).unwrap();
    nex::import::import(&tx, &req, &crate::import_support::opts()).unwrap();
    // Above the mark: the triggers leave these to the flush, which reads the final rows.
    tx.execute(
        "UPDATE messages SET content = 'final finalword' WHERE content = 'first draftword'",
        [],
    )
    .unwrap();
    // Every call: the fixture's (at the mark, re-indexed by the triggers) and the new one.
    tx.execute(
        "UPDATE tool_calls SET result_json = json_object('stdout', 'changedword')",
        [],
    )
    .unwrap();
    tx.execute("DELETE FROM messages WHERE content LIKE 'goneword%'", [])
        .unwrap();
    search_index::flush(&tx).unwrap();
    tx.commit().unwrap();
    assert!(search_index::check(&conn).unwrap());
    for (word, count) in [
        ("draftword", 0),
        ("finalword", 1),
        ("goneword", 0),
        ("headword", 0),
        ("changedword", 2),
        ("parser crash", 3),
    ] {
        assert_eq!(find(&conn, word).len(), count, "{word}");
    }
    // A flush with nothing new changes nothing.
    let before = tool_index_bytes(&conn);
    let tx = conn.transaction().unwrap();
    search_index::flush(&tx).unwrap();
    tx.commit().unwrap();
    assert_eq!(tool_index_bytes(&conn), before);
    assert!(search_index::check(&conn).unwrap());
}

#[test]
fn a_writer_that_forgot_to_flush_is_caught_up_by_the_next_flush() {
    let mut conn = ledger();
    let tx = conn.transaction().unwrap();
    let req: nex::protocol::ImportRequest =
        serde_json::from_value(import_req("k1", "backfill", fixture_items())).unwrap();
    nex::import::import(&tx, &req, &crate::import_support::opts()).unwrap();
    tx.commit().unwrap();
    assert!(find(&conn, "parser crash").is_empty());
    assert!(!search_index::check(&conn).unwrap());
    run_import(
        &mut conn,
        import_req("k2", "backfill", vec![long_result_item()]),
    )
    .unwrap();
    assert_eq!(find(&conn, "parser crash").len(), 3);
    assert_eq!(find(&conn, "headword").len(), 1);
    assert!(search_index::check(&conn).unwrap());
}

#[test]
fn migration_0008_on_a_0007_ledger_keeps_search_results() {
    let mut conn = Connection::open_in_memory().unwrap();
    let before = migrations_before("0008_search_batched");
    assert!(before.last().unwrap().name.contains("0007"));
    ledger::migrate(&mut conn, &before).unwrap();
    let mut items = fixture_items();
    items.push(long_result_item());
    run_import(&mut conn, import_req("k1", "backfill", items)).unwrap();
    store_bodies_as_text(&conn);
    let words = [
        "parser crash",
        "tokenizer_empty",
        "headword",
        "tailword",
        "middleword",
        "widgets",
    ];
    let results: Vec<_> = words.iter().map(|w| find(&conn, w)).collect();
    assert!(search_index::check(&conn).unwrap());
    ledger::migrate(&mut conn, ledger::migrate::AGENTS).unwrap();
    assert!(search_index::check(&conn).unwrap());
    let after: Vec<_> = words.iter().map(|w| find(&conn, w)).collect();
    assert_eq!(after, results);
    let marks: (i64, i64) = conn
        .query_row(
            "SELECT messages_mark, tool_calls_mark FROM search_mark",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        marks,
        (max_rowid(&conn, "messages"), max_rowid(&conn, "tool_calls"))
    );
}

#[test]
fn one_two_and_three_letter_prefixes_find_every_word_they_start() {
    let conn = fixture();
    // `parser` is in a1, a2, b1 and c1; no other word starts with `p`.
    let parser: std::collections::BTreeSet<_> = ids(&find(&conn, "parser")).into_iter().collect();
    assert_eq!(parser.len(), 4);
    for prefix in ["p*", "pa*", "par*", "pars*", "P*"] {
        let hits: std::collections::BTreeSet<_> = ids(&find(&conn, prefix)).into_iter().collect();
        assert_eq!(hits, parser, "{prefix}");
    }
    // `t*`: `the` (a1, c1), `the` and `tokenizer` (a2), `test` and `tokenizer` (the tool
    // call); none in b1 or b2.
    let t: Vec<_> = find(&conn, "t*");
    assert_eq!(t.iter().filter(|h| h.role == "tool").count(), 1);
    assert_eq!(t.len(), 4, "a1, a2, c1, the tool call: {t:?}");
    // Migration 0010's setting: segments of up to 8 MB of pending terms.
    for index in search_index::INDEXES {
        let hashsize: i64 = conn
            .query_row(
                &format!("SELECT v FROM {index}_config WHERE k = 'hashsize'"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hashsize, 8 << 20, "{index}");
    }
}

/// `count` user messages with the same text in one session of `provider`, one a second apart.
fn same_text_session(provider: &str, id: &str, count: i64) -> Value {
    let turns: Vec<Value> = (0..count)
        .map(|i| turn(&format!("t{i}"), i * 1_000))
        .collect();
    let messages: Vec<Value> = (0..count)
        .map(|i| {
            msg(
                &format!("m{i}"),
                &format!("t{i}"),
                "user",
                "identical words everywhere",
                i,
                i * 1_000,
            )
        })
        .collect();
    session(provider, id, "/home/u/same", json!(turns), json!(messages))
}

#[test]
fn equal_scores_past_the_first_chunk_are_ordered_newest_first_under_filters() {
    let mut conn = ledger();
    let items = vec![
        same_text_session("claude-code", "s1", 150),
        same_text_session("codex", "s2", 150),
    ];
    run_import(&mut conn, import_req("k1", "backfill", items)).unwrap();
    // Every hit has the same bm25: the order is newest first, whatever the index's order.
    let hits = find_with(
        &conn,
        SearchFilter {
            query: "identical".into(),
            limit: 4,
            ..filter()
        },
    );
    let got: Vec<_> = hits.iter().map(|h| h.message_id.clone().unwrap()).collect();
    let want = vec![
        mid("claude-code", "s1", "m149"),
        mid("codex", "s2", "m149"),
        mid("claude-code", "s1", "m148"),
        mid("codex", "s2", "m148"),
    ];
    // The two sessions' messages of the same second tie on time too: id order.
    let mut want_sorted = want.clone();
    want_sorted[..2].sort();
    want_sorted[2..].sort();
    assert_eq!(got, want_sorted);
    // A filter that passes half the hits: the newest of that half, past the first chunk.
    let hits = find_with(
        &conn,
        SearchFilter {
            query: "identical".into(),
            provider: Some("codex".into()),
            since_ms: Some(T0 + 10_000),
            until_ms: Some(T0 + 13_000),
            limit: 2,
            offset: 1,
            ..filter()
        },
    );
    let got: Vec<_> = hits.iter().map(|h| h.message_id.clone().unwrap()).collect();
    assert_eq!(
        got,
        vec![mid("codex", "s2", "m11"), mid("codex", "s2", "m10")]
    );
}

#[test]
fn migration_0010_on_a_0009_ledger_keeps_search_results() {
    let mut conn = Connection::open_in_memory().unwrap();
    let before = migrations_before("0010_search_segments");
    assert!(before.last().unwrap().name.contains("0009"));
    ledger::migrate(&mut conn, &before).unwrap();
    let mut items = fixture_items();
    items.push(long_result_item());
    run_import(&mut conn, import_req("k1", "backfill", items)).unwrap();
    let words = [
        "parser crash",
        "tokenizer_empty",
        "headword",
        "tailword",
        "middleword",
        "pars*",
        "tok*",
        "\"fix the parser\"",
    ];
    let results: Vec<_> = words.iter().map(|w| find(&conn, w)).collect();
    ledger::migrate(&mut conn, ledger::migrate::AGENTS).unwrap();
    assert!(search_index::check(&conn).unwrap());
    let after: Vec<_> = words.iter().map(|w| find(&conn, w)).collect();
    assert_eq!(after, results);
    // The next import is indexed by the flush, as before.
    let mut next = long_result_item();
    next["sourceSessionId"] = json!("long2");
    next["sourceSessionFingerprint"] = json!("fp-long2");
    run_import(&mut conn, import_req("k2", "backfill", vec![next])).unwrap();
    assert_eq!(find(&conn, "tailword").len(), 2);
    assert_eq!(find(&conn, "ta*").len(), 2);
    assert!(search_index::check(&conn).unwrap());
}

/// Segments of `index` holding data: one `_idx` row names each leaf range of a segment.
fn segments(conn: &Connection, index: &str) -> i64 {
    conn.query_row(
        &format!("SELECT count(DISTINCT segid) FROM {index}_idx"),
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Six more imports of one session each (one flush, so one new segment per index, each),
/// every one searchable at once; the segments of `messages_fts` added, net of merges. Each
/// message holds 30,000 distinct words, so each segment has over 64 leaf pages: FTS5 merges
/// only once that many pages have been written since its last merge.
fn six_flushes(conn: &mut Connection) -> i64 {
    let first = segments(conn, "messages_fts");
    for n in 1..=6 {
        let text: String = (0..30_000).map(|i| format!("w{n}x{i} ")).collect();
        let item = session(
            "codex",
            &format!("big{n}"),
            "/home/u/big",
            json!([turn("t", 0)]),
            json!([msg("m", "t", "user", &format!("{text} bigword"), 0, 0)]),
        );
        run_import(conn, import_req(&format!("big{n}"), "backfill", vec![item])).unwrap();
        assert_eq!(find(conn, "bigword").len(), n);
        assert_eq!(find(conn, &format!("w{n}x29999")).len(), 1);
    }
    assert!(search_index::check(conn).unwrap());
    segments(conn, "messages_fts") - first
}

#[test]
fn migration_0011_merges_segments_sixteen_at_a_time_and_keeps_search_results() {
    let mut conn = Connection::open_in_memory().unwrap();
    let before = migrations_before("0011_search_automerge");
    assert!(before.len() >= 10, "0011 comes after 0010");
    ledger::migrate(&mut conn, &before).unwrap();
    let mut items = fixture_items();
    items.push(long_result_item());
    run_import(&mut conn, import_req("k1", "backfill", items)).unwrap();
    let words = [
        "parser crash",
        "tokenizer_empty",
        "headword",
        "tailword",
        "pars*",
        "\"fix the parser\"",
    ];
    let results: Vec<_> = words.iter().map(|w| find(&conn, w)).collect();
    // Before 0011 (automerge 4), a level of four segments is merged.
    let mut old = Connection::open_in_memory().unwrap();
    ledger::migrate(&mut old, &before).unwrap();
    let merged = six_flushes(&mut old);
    assert!(merged < 6, "{merged}");

    ledger::migrate(&mut conn, ledger::migrate::AGENTS).unwrap();
    assert!(search_index::check(&conn).unwrap());
    let after: Vec<_> = words.iter().map(|w| find(&conn, w)).collect();
    assert_eq!(after, results);
    for index in search_index::INDEXES {
        let automerge: i64 = conn
            .query_row(
                &format!("SELECT v FROM {index}_config WHERE k = 'automerge'"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(automerge, 16, "{index}");
    }
    // With 16, six more segments stay apart.
    assert_eq!(six_flushes(&mut conn), 6);
}
