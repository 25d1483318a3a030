//! The rank cap of `nex search` (`SearchFilter::rank_cap`, `--rank-cap`, `NEX_SEARCH_RANK_CAP`):
//! a query with at most `cap` matches in an index is ranked exactly (the same hits as with no
//! cap, and `capped` is `None`); one with more is ranked among its most recently imported
//! `cap` matches (windows of `cap`, the next one only while fewer than `offset + limit` hits
//! passed the filters), with `capped` saying how many of how many. Each expectation is the
//! uncapped ranking restricted to the matches the windows hold, computed from the index here.

use std::path::Path;
use std::process::Command;

use nex::ledger;
use nex::query::search::{Capped, MATCH_COUNT_BUDGET, SearchFilter, SearchHit, search};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::import_support::{import_req, run_import};

const T0: i64 = 1_760_000_000_000;

/// `count` messages of `provider` session `id`, message `i` at second `start + i`, each
/// holding `common` 1 to 4 times in texts of different lengths (so their bm25 scores differ),
/// and the word `n<i>`.
fn session(provider: &str, id: &str, start: i64, count: i64) -> Value {
    let turns: Vec<Value> = (0..count)
        .map(|i| json!({"sourceTurnId": format!("t{i}"), "startedAtMs": T0 + (start + i) * 1_000}))
        .collect();
    let messages: Vec<Value> = (0..count)
        .map(|i| {
            let text = format!(
                "{}filler{} n{i}",
                "common ".repeat((i % 4 + 1) as usize),
                " words".repeat((i % 7) as usize)
            );
            json!({"sourceMessageId": format!("m{i}"), "sourceTurnId": format!("t{i}"),
                   "role": "user", "content": text, "sequence": i,
                   "createdAtMs": T0 + (start + i) * 1_000})
        })
        .collect();
    json!({"sourceProvider": provider, "sourceSessionId": id,
           "sourceSessionFingerprint": format!("fp-{id}"),
           "session": {"createdAtMs": T0, "workspacePath": format!("/home/u/{id}")},
           "turns": turns, "messages": messages})
}

/// A ledger at `path`: 10 codex messages imported first, then 30 claude-code ones (all
/// matching `common`), so the newest matches are claude-code's.
fn ledger_at(path: &Path) -> Connection {
    let mut conn = ledger::open_agents(path).unwrap();
    let old = session("codex", "old", 0, 10);
    let new = session("claude-code", "new", 100, 30);
    run_import(&mut conn, import_req("k1", "backfill", vec![old])).unwrap();
    run_import(&mut conn, import_req("k2", "backfill", vec![new])).unwrap();
    conn
}

fn find(conn: &Connection, filter: &SearchFilter) -> (Vec<SearchHit>, Option<Capped>) {
    let r = search(conn, Path::new(":memory:"), filter).expect("search");
    (r.hits, r.capped)
}

fn common(limit: u32, rank_cap: Option<u32>) -> SearchFilter {
    SearchFilter {
        query: "common".into(),
        limit,
        rank_cap,
        ..SearchFilter::default()
    }
}

/// The message ids of the matches of `query`, most recently imported first.
fn newest_matches(conn: &Connection, query: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(
            "SELECT m.id FROM messages_fts f JOIN messages m ON m.rowid = f.rowid
             WHERE messages_fts MATCH ?1 ORDER BY f.rowid DESC",
        )
        .unwrap();
    stmt.query_map([query], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The uncapped ranking of `filter` (every hit), kept to the messages in `among`, first `n`.
fn exact_among(
    conn: &Connection,
    filter: &SearchFilter,
    among: &[String],
    n: usize,
) -> Vec<SearchHit> {
    let all = SearchFilter {
        limit: 1_000,
        offset: 0,
        rank_cap: None,
        ..filter.clone()
    };
    let (hits, capped) = find(conn, &all);
    assert_eq!(capped, None);
    hits.into_iter()
        .filter(|h| among.contains(h.message_id.as_ref().unwrap()))
        .take(n)
        .collect()
}

#[test]
fn under_or_at_the_cap_the_ranking_is_exact_and_not_capped() {
    let conn = ledger_at(&tempfile::tempdir().unwrap().path().join("agents.db"));
    let (exact, capped) = find(&conn, &common(50, None));
    assert_eq!((exact.len(), capped), (40, None));
    // Scores differ and ties are newest first: the order is the one every cap >= 40 gives.
    for cap in [40, 41, 10_000] {
        assert_eq!(find(&conn, &common(50, Some(cap))), (exact.clone(), None));
        assert_eq!(
            find(&conn, &common(5, Some(cap))),
            (exact[..5].to_vec(), None)
        );
    }
    // A query under the cap whatever the frequent word does.
    let rare = SearchFilter {
        query: "common n7".into(),
        ..common(50, Some(2))
    };
    let (hits, capped) = find(&conn, &rare);
    assert_eq!(capped, None);
    assert_eq!(hits.len(), 2);
}

#[test]
fn over_the_cap_the_newest_window_is_ranked_and_the_result_says_so() {
    let conn = ledger_at(&tempfile::tempdir().unwrap().path().join("agents.db"));
    let newest = newest_matches(&conn, "common");
    assert_eq!(newest.len(), 40);
    let (hits, capped) = find(&conn, &common(5, Some(12)));
    assert_eq!(
        capped,
        Some(Capped {
            ranked: 12,
            matches: 40,
            at_least: false
        })
    );
    assert_eq!(hits, exact_among(&conn, &common(5, None), &newest[..12], 5));
    // The best of the window is not the best of all (else the test proves nothing).
    assert_ne!(hits, find(&conn, &common(5, None)).0);
    // A page further on (the MCP cursor) ranks the same window.
    let page = SearchFilter {
        offset: 5,
        ..common(5, Some(12))
    };
    assert_eq!(
        find(&conn, &page).0,
        exact_among(&conn, &common(5, None), &newest[..12], 10)[5..].to_vec()
    );
    // A cap of one: the newest match alone... then the next windows, one match each, until
    // `limit` hits. The 37 matches left are counted up to the budget only (the budget times
    // the cap): `matches` is then a lower bound, and says so.
    let (hits, capped) = find(&conn, &common(3, Some(1)));
    const { assert!(3 + MATCH_COUNT_BUDGET < 40) };
    assert_eq!(
        capped,
        Some(Capped {
            ranked: 3,
            matches: 3 + MATCH_COUNT_BUDGET,
            at_least: true
        })
    );
    assert_eq!(hits, exact_among(&conn, &common(3, None), &newest[..3], 3));
}

#[test]
fn a_filter_the_newest_windows_miss_reaches_older_windows() {
    let conn = ledger_at(&tempfile::tempdir().unwrap().path().join("agents.db"));
    let newest = newest_matches(&conn, "common");
    // Codex's ten messages are the oldest matches: windows of 7 ranks 30 claude-code matches
    // (windows 1-4 and part of 5) before the first codex ones, and stops at the window that
    // brings the third.
    let codex = SearchFilter {
        provider: Some("codex".into()),
        ..common(3, Some(7))
    };
    let (hits, capped) = find(&conn, &codex);
    assert_eq!(
        capped,
        Some(Capped {
            ranked: 35,
            matches: 40,
            at_least: false
        })
    );
    assert_eq!(hits, exact_among(&conn, &codex, &newest[..35], 3));
    assert!(hits.iter().all(|h| h.provider.as_deref() == Some("codex")));
    // Asking for more than the last windows hold: every window is ranked, the answer is
    // exact, and says so.
    let all_codex = SearchFilter {
        limit: 20,
        ..codex.clone()
    };
    let (hits, capped) = find(&conn, &all_codex);
    assert_eq!(capped, None);
    assert_eq!(
        hits,
        find(
            &conn,
            &SearchFilter {
                rank_cap: None,
                ..all_codex
            }
        )
        .0
    );
    assert_eq!(hits.len(), 10);
    // A time filter older than every window's hits: no hit, and nothing was left unranked.
    let before = SearchFilter {
        until_ms: Some(T0),
        ..common(3, Some(7))
    };
    assert_eq!(find(&conn, &before), (Vec::new(), None));
}

#[test]
fn a_malformed_query_is_invalid_whatever_the_cap() {
    let conn = ledger_at(&tempfile::tempdir().unwrap().path().join("agents.db"));
    for cap in [None, Some(1), Some(10_000)] {
        let bad = SearchFilter {
            query: "\"unterminated".into(),
            ..common(5, cap)
        };
        let err = search(&conn, Path::new(":memory:"), &bad).unwrap_err();
        assert_eq!(err.code().as_str(), "search_query_invalid");
    }
}

fn nex(ledger: &Path, args: &[&str], cap_env: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nex"));
    cmd.env_remove("NEX_LEDGER")
        .env_remove("NEX_HOME")
        .env_remove("RUST_LOG")
        .env_remove("NEX_SEARCH_RANK_CAP")
        .env("TZ", "UTC")
        .arg("search")
        .args(args)
        .arg("--ledger")
        .arg(ledger);
    if let Some(cap) = cap_env {
        cmd.env("NEX_SEARCH_RANK_CAP", cap);
    }
    cmd.output().unwrap()
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The JSON-lines contract's ten fields, in order, on every line; `capped` after them on each
/// line of a capped search, never on an exact one.
#[test]
fn the_cli_says_when_it_ranked_part_of_the_matches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    drop(ledger_at(&path));
    const FIELDS: [&str; 10] = [
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
    let mut sorted_fields = FIELDS.to_vec();
    sorted_fields.sort();
    // serde_json's map is sorted here: the order is checked on the raw lines.
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };

    let exact = lines(&nex(&path, &["common", "--limit", "4", "--json"], None));
    assert_eq!(exact.len(), 4);
    for line in &exact {
        assert_eq!(keys(line), sorted_fields);
    }
    let raw = nex(&path, &["common", "--limit", "4", "--json"], None);
    for line in String::from_utf8_lossy(&raw.stdout).lines() {
        let at: Vec<usize> = FIELDS
            .iter()
            .map(|f| line.find(&format!("\"{f}\":")).unwrap())
            .collect();
        assert!(at.is_sorted(), "{line}");
    }
    let capped = lines(&nex(
        &path,
        &["common", "--limit", "4", "--json", "--rank-cap", "12"],
        None,
    ));
    let from_env = lines(&nex(
        &path,
        &["common", "--limit", "4", "--json"],
        Some("12"),
    ));
    assert_eq!(capped, from_env);
    assert_eq!(capped.len(), 4);
    let mut with_capped = FIELDS.to_vec();
    with_capped.push("capped");
    with_capped.sort();
    for line in &capped {
        assert_eq!(keys(line), with_capped);
        assert_eq!(line["capped"], json!({"ranked": 12, "matches": 40}));
    }
    let raw = nex(&path, &["common", "--limit", "4", "--json"], Some("12"));
    for line in String::from_utf8_lossy(&raw.stdout).lines() {
        assert!(
            line.ends_with(r#","capped":{"ranked":12,"matches":40}}"#),
            "{line}"
        );
    }
    // --rank-cap 0 overrides the environment: every match ranked.
    let all = lines(&nex(
        &path,
        &["common", "--limit", "4", "--json", "--rank-cap", "0"],
        Some("12"),
    ));
    assert_eq!(all, exact);

    let text = nex(&path, &["common", "--limit", "4", "--rank-cap", "12"], None);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("ranked the 12 most recently imported of 40 matches"),
        "{text}"
    );
    let text = nex(&path, &["common", "--limit", "4"], None);
    assert!(!String::from_utf8_lossy(&text.stdout).contains("ranked the"));

    // Past the counting budget (the cap times MATCH_COUNT_BUDGET): a lower bound, said so.
    let counted = 4 + 2 * MATCH_COUNT_BUDGET;
    const { assert!(4 + 2 * MATCH_COUNT_BUDGET < 40) };
    let raw = nex(
        &path,
        &["common", "--limit", "4", "--json", "--rank-cap", "2"],
        None,
    );
    let tail = format!(r#","capped":{{"ranked":4,"matches":{counted},"at_least":true}}}}"#);
    for line in String::from_utf8_lossy(&raw.stdout).lines() {
        assert!(line.ends_with(&tail), "{line}");
    }
    let text = nex(&path, &["common", "--limit", "4", "--rank-cap", "2"], None);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains(&format!(
            "ranked the 4 most recently imported of at least {counted} matches"
        )),
        "{text}"
    );

    let bad = nex(&path, &["common"], Some("many"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("[bad_request]"));
}

/// `search_sessions` of `nex mcp` (a real MCP client over stdio) ranks under the rank cap
/// `NEX_SEARCH_RANK_CAP` sets, and says so in `capped`; `null` when the answer is exact.
#[tokio::test]
async fn search_sessions_says_when_it_ranked_part_of_the_matches() {
    use crate::query_mcp::{client_with_env, structured};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    let conn = ledger_at(&path);
    let capped = client_with_env(dir.path(), &path, &[], &[("NEX_SEARCH_RANK_CAP", "12")]).await;
    let got = structured(
        &capped,
        "search_sessions",
        json!({"query": "common", "limit": 5}),
    )
    .await;
    let (want, _) = find(&conn, &common(5, Some(12)));
    same_hits(&got["hits"], &want);
    assert_eq!(got["capped"], json!({"ranked": 12, "matches": 40}));
    // The next page ranks the same window.
    let next = structured(
        &capped,
        "search_sessions",
        json!({"query": "common", "limit": 5, "cursor": got["next_cursor"]}),
    )
    .await;
    let page = SearchFilter {
        offset: 5,
        ..common(5, Some(12))
    };
    same_hits(&next["hits"], &find(&conn, &page).0);
    assert_eq!(next["capped"], json!({"ranked": 12, "matches": 40}));
    capped.cancel().await.unwrap();

    let exact = client_with_env(dir.path(), &path, &[], &[]).await;
    let got = structured(
        &exact,
        "search_sessions",
        json!({"query": "common", "limit": 5}),
    )
    .await;
    assert_eq!(got["capped"], Value::Null);
    same_hits(&got["hits"], &find(&conn, &common(5, None)).0);
    exact.cancel().await.unwrap();
}

/// `got` (hits as JSON) are `want`: every field equal, scores to the precision JSON carries.
fn same_hits(got: &Value, want: &[SearchHit]) {
    let mut got = got.as_array().unwrap().clone();
    let mut want = serde_json::to_value(want)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter_mut().zip(want.iter_mut()) {
        let (gs, ws) = (g["score"].as_f64().unwrap(), w["score"].as_f64().unwrap());
        assert!((gs - ws).abs() <= ws.abs() * 1e-12, "{gs} {ws}");
        g["score"] = Value::Null;
        w["score"] = Value::Null;
    }
    assert_eq!(got, want);
}
