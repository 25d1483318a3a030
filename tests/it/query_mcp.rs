//! `nex mcp` driven by a real MCP client (rmcp) over the stdio of the built binary: the four
//! tools listed, each called and answering what the library's query answers, pages under a
//! limit and a byte cap joined by cursors, and bad arguments answered with MCP errors while the
//! server keeps serving.

use std::path::Path;

use nex::ledger;
use nex::query::{Filters, prices::PriceTable, search, sessions, usage};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

use crate::import_support::{import_req, run_import};
use crate::query_search::fixture_items;

const NEX: &str = env!("CARGO_BIN_EXE_nex");

pub(crate) type Client = RunningService<RoleClient, ()>;

pub(crate) async fn client(dir: &Path, ledger: &Path, extra: &[&str]) -> Client {
    client_with_env(dir, ledger, extra, &[]).await
}

/// [`client`] with `env` set for the server.
pub(crate) async fn client_with_env(
    dir: &Path,
    ledger: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Client {
    let transport = TokioChildProcess::new(tokio::process::Command::new(NEX).configure(|cmd| {
        cmd.arg("mcp")
            .arg("--ledger")
            .arg(ledger)
            .args(extra)
            .env("NEX_HOME", dir)
            .env_remove("NEX_SEARCH_RANK_CAP")
            .envs(env.iter().copied())
            // Days of `since` / `until` are the server's local days.
            .env("TZ", "UTC");
    }))
    .expect("spawn nex mcp");
    ().serve(transport).await.expect("MCP handshake")
}

pub(crate) async fn call(
    client: &Client,
    tool: &'static str,
    args: Value,
) -> Result<CallToolResult, ServiceError> {
    let args = args.as_object().expect("arguments object").clone();
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
}

pub(crate) async fn structured(client: &Client, tool: &'static str, args: Value) -> Value {
    let result = call(client, tool, args).await.expect(tool);
    assert_ne!(result.is_error, Some(true), "{tool}: {result:?}");
    result.structured_content.expect("structured content")
}

fn ledger_with_fixture(dir: &Path) -> (std::path::PathBuf, rusqlite::Connection) {
    let path = dir.join("agents.db");
    let mut conn = ledger::open_agents(&path).unwrap();
    run_import(&mut conn, import_req("k1", "backfill", fixture_items())).unwrap();
    (path, conn)
}

/// The code a JSON-RPC error carries in `data`.
pub(crate) fn mcp_error_code(result: Result<CallToolResult, ServiceError>) -> (ErrorCode, String) {
    match result {
        Err(ServiceError::McpError(e)) => {
            let code = e
                .data
                .as_ref()
                .and_then(|d| d["code"].as_str())
                .unwrap_or("")
                .to_owned();
            (e.code, code)
        }
        other => panic!("expected an MCP error, got {other:?}"),
    }
}

#[tokio::test]
async fn lists_the_four_read_only_tools_and_each_answers_as_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let (path, conn) = ledger_with_fixture(dir.path());
    let client = client(dir.path(), &path, &[]).await;

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "get_session",
            "get_usage",
            "list_sessions",
            "search_sessions"
        ]
    );
    for tool in &tools {
        let hints = tool.annotations.as_ref().expect("annotations");
        assert_eq!(hints.read_only_hint, Some(true), "{}", tool.name);
    }

    // search_sessions = query::search::search.
    let got = structured(&client, "search_sessions", json!({"query": "parser crash"})).await;
    let want = search::search(
        &conn,
        &path,
        &search::SearchFilter {
            query: "parser crash".into(),
            limit: 20,
            ..Default::default()
        },
    )
    .unwrap()
    .hits;
    assert_eq!(want.len(), 3);
    assert_eq!(got["hits"], serde_json::to_value(&want).unwrap());
    assert_eq!(got["next_cursor"], Value::Null);
    let got = structured(
        &client,
        "search_sessions",
        json!({"query": "tokenizer", "role": "tool", "provider": "claude-code",
               "project": "/home/u/alpha", "since": "2025-10-09", "until": "2025-10-09"}),
    )
    .await;
    assert_eq!(got["hits"].as_array().unwrap().len(), 1);
    assert_eq!(got["hits"][0]["role"], "tool");

    // list_sessions = query::sessions::list_labels, then session_overview of each.
    let facts = nex::query::session_facts(&conn).unwrap();
    let got = structured(&client, "list_sessions", json!({})).await;
    let want = nex::mcp::session_list(
        &conn,
        &facts,
        &sessions::ListFilter {
            limit: 20,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(want.len(), 3);
    let labels = sessions::list_labels(
        &facts,
        &sessions::ListFilter {
            limit: 20,
            ..Default::default()
        },
    );
    assert_eq!(
        want.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
        labels
    );
    assert_eq!(got["sessions"], serde_json::to_value(&want).unwrap());
    let codex = structured(&client, "list_sessions", json!({"provider": "codex"})).await;
    assert_eq!(codex["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(codex["sessions"][0]["title"], "parser crash again");
    // Paged by the cursor: the second session alone is list_labels' second label.
    let second = structured(&client, "list_sessions", json!({"limit": 1, "cursor": "1"})).await;
    assert_eq!(second["sessions"][0]["label"], labels[1].as_str());
    assert_eq!(second["next_cursor"], "2");

    // get_session = query::sessions::resolve_label then query::export::export_session.
    let label = want[0].label.clone();
    let prefix = &label[..label.len() - 4];
    let got = structured(&client, "get_session", json!({"label": prefix})).await;
    let resolved = sessions::resolve_label(&conn, prefix).unwrap();
    assert_eq!(resolved, label);
    let doc = nex::query::export::export_session(
        &conn,
        &resolved,
        &nex::query::export::ExportOptions::default(),
    )
    .unwrap()
    .unwrap();
    assert!(!doc.turns.is_empty());
    let mut expected = serde_json::to_value(&doc).unwrap();
    expected["next_cursor"] = Value::Null;
    assert_eq!(got, expected);
    // Its turns paged one at a time join into the export's turns.
    let mut turns = Vec::new();
    let mut args = json!({"label": label, "limit": 1});
    loop {
        let page = structured(&client, "get_session", args.clone()).await;
        assert!(page["turns"].as_array().unwrap().len() <= 1);
        turns.extend(page["turns"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => args["cursor"] = json!(cursor),
            None => break,
        }
    }
    assert_eq!(
        Value::Array(turns),
        serde_json::to_value(&doc.turns).unwrap()
    );

    // get_usage = query::usage::usage_report, priced as `nex usage` prices (no config.toml
    // here: the built-in table).
    let got = structured(&client, "get_usage", json!({"by": "provider"})).await;
    let report = usage::usage_report(
        &conn,
        &facts,
        &Filters::default(),
        usage::GroupBy::Provider,
        &PriceTable::with_overrides(&Default::default()),
    )
    .unwrap();
    assert_eq!(got["rows"], serde_json::to_value(&report.rows).unwrap());
    assert_eq!(
        got["unpriced_models"],
        serde_json::to_value(&report.unpriced_models).unwrap()
    );
    let keys: Vec<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["claude-code", "codex"]);

    client.cancel().await.unwrap();
}

/// get_usage prices as `nex usage` does: the built-in table with `config.toml`'s `[prices]`
/// (read from the server's NEX home), and its rows are the CLI's rows.
#[tokio::test]
async fn get_usage_answers_as_nex_usage_with_the_config_prices() {
    let f = crate::query_cli::Fixture::new();
    f.config(
        "[prices.\"mystery-model-x\"]\ninput = 1\noutput = 2\n\
         [prices.\"claude-sonnet-4-5\"]\ninput = 0\noutput = 0\ncache_read = 0\ncache_write = 0\n",
    );
    let cli = f.json(&["usage", "--by", "session"]);
    assert_eq!(cli["unpriced_models"], json!([]), "the config priced them");
    let client = client(&f.home(), &f.ledger(), &[]).await;
    let got = structured(&client, "get_usage", json!({"by": "session", "limit": 200})).await;
    assert_eq!(got["rows"], cli["rows"]);
    assert_eq!(got["unpriced_models"], cli["unpriced_models"]);
    assert!(
        got["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["cost_usd"].as_f64().is_some_and(|c| c > 0.0)),
        "{got}"
    );
    // Without the overrides the unknown model is unpriced again.
    f.config("");
    let client_plain = client_default(&f.home(), &f.ledger()).await;
    let plain = structured(&client_plain, "get_usage", json!({"by": "session"})).await;
    assert_eq!(plain["unpriced_models"], json!(["mystery-model-x"]));
    client.cancel().await.unwrap();
    client_plain.cancel().await.unwrap();
}

#[tokio::test]
async fn pages_under_a_limit_and_a_byte_cap_join_into_the_whole_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _conn) = ledger_with_fixture(dir.path());
    // A cap so small that each page holds one hit (a page always holds at least one).
    let client = client(dir.path(), &path, &["--max-result-bytes", "200"]).await;
    let whole = structured(
        &client,
        "search_sessions",
        json!({"query": "parser", "limit": 50}),
    )
    .await;
    assert_eq!(
        whole["hits"].as_array().unwrap().len(),
        1,
        "the cap cut the page"
    );
    let all = {
        let wide = client_all(&client, json!({"query": "parser", "limit": 50})).await;
        assert_eq!(
            wide.len(),
            4,
            "every page joined: three prompts and one reply"
        );
        wide
    };
    let unique: std::collections::BTreeSet<String> = all
        .iter()
        .map(|h| h["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unique.len(), 4, "no hit twice");
    client.cancel().await.unwrap();

    // Without the cap, `limit` pages.
    let client = client_default(dir.path(), &path).await;
    let first = structured(
        &client,
        "search_sessions",
        json!({"query": "parser", "limit": 3}),
    )
    .await;
    assert_eq!(first["hits"].as_array().unwrap().len(), 3);
    assert_eq!(first["next_cursor"], "3");
    let rest = structured(
        &client,
        "search_sessions",
        json!({"query": "parser", "limit": 3, "cursor": "3"}),
    )
    .await;
    assert_eq!(rest["hits"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let joined: Vec<Value> = [
        first["hits"].as_array().unwrap().clone(),
        rest["hits"].as_array().unwrap().clone(),
    ]
    .concat();
    assert_eq!(joined, all);
    client.cancel().await.unwrap();
}

async fn client_default(dir: &Path, ledger: &Path) -> Client {
    client(dir, ledger, &[]).await
}

/// Every hit of a search, page after page.
async fn client_all(client: &Client, mut args: Value) -> Vec<Value> {
    let mut hits = Vec::new();
    loop {
        let page = structured(client, "search_sessions", args.clone()).await;
        hits.extend(page["hits"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => args["cursor"] = json!(cursor),
            None => return hits,
        }
    }
}

#[tokio::test]
async fn bad_arguments_get_mcp_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _conn) = ledger_with_fixture(dir.path());
    let client = client(dir.path(), &path, &[]).await;

    let bad = call(&client, "search_sessions", json!({"query": "\"unbalanced"})).await;
    assert_eq!(
        mcp_error_code(bad),
        (ErrorCode::INVALID_PARAMS, "search_query_invalid".into())
    );
    let bad = call(
        &client,
        "search_sessions",
        json!({"query": "x", "role": "robot"}),
    )
    .await;
    assert_eq!(
        mcp_error_code(bad),
        (ErrorCode::INVALID_PARAMS, "bad_request".into())
    );
    let bad = call(&client, "list_sessions", json!({"since": "last tuesday"})).await;
    assert_eq!(
        mcp_error_code(bad),
        (ErrorCode::INVALID_PARAMS, "date_invalid".into())
    );
    let bad = call(&client, "list_sessions", json!({"cursor": "not-a-cursor"})).await;
    assert_eq!(
        mcp_error_code(bad),
        (ErrorCode::INVALID_PARAMS, "bad_request".into())
    );
    let bad = call(&client, "get_session", json!({"label": "import:nope"})).await;
    assert_eq!(
        mcp_error_code(bad),
        (ErrorCode::INVALID_PARAMS, "session_not_found".into())
    );
    let bad = call(&client, "get_usage", json!({"by": "galaxy"})).await;
    assert_eq!(
        mcp_error_code(bad),
        (ErrorCode::INVALID_PARAMS, "bad_request".into())
    );
    // The grouping by machine is the replica's; a replica where none is configured.
    let bad = call(&client, "get_usage", json!({"by": "machine"})).await;
    assert_eq!(
        mcp_error_code(bad),
        (ErrorCode::INVALID_PARAMS, "bad_request".into())
    );
    let bad = call(
        &client,
        "get_usage",
        json!({"replica": true, "by": "machine"}),
    )
    .await;
    assert_eq!(
        mcp_error_code(bad),
        (ErrorCode::INVALID_PARAMS, "replica_not_configured".into())
    );
    // Arguments of the wrong shape: refused by the SDK before the tool runs (a tool error
    // result or a JSON-RPC error, never a crash).
    for (tool, args) in [
        ("list_sessions", json!({"limit": "many"})),
        ("search_sessions", json!({})),
        ("get_session", json!({"label": 7})),
    ] {
        match call(&client, tool, args).await {
            Ok(result) => assert_eq!(result.is_error, Some(true), "{tool}"),
            Err(ServiceError::McpError(e)) => assert_eq!(e.code, ErrorCode::INVALID_PARAMS),
            Err(other) => panic!("{tool}: {other:?}"),
        }
    }
    assert!(matches!(
        call(&client, "drop_tables", json!({})).await,
        Err(ServiceError::McpError(_))
    ));

    // Still serving.
    let alive = structured(&client, "list_sessions", json!({})).await;
    assert_eq!(alive["sessions"].as_array().unwrap().len(), 3);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn without_a_ledger_the_server_starts_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path(), &dir.path().join("none.db"), &[]).await;
    let err = call(&client, "list_sessions", json!({})).await;
    assert_eq!(
        mcp_error_code(err),
        (ErrorCode::INTERNAL_ERROR, "ledger_not_found".into())
    );
    assert!(
        !dir.path().join("none.db").exists(),
        "a reader never creates the ledger"
    );
    client.cancel().await.unwrap();
}

/// list_sessions rows are `nex sessions list --json` rows: the same fields (persona, status
/// and turns on the thread included) with the same values.
#[tokio::test]
async fn list_sessions_rows_are_the_rows_of_nex_sessions_list() {
    let f = crate::query_cli::Fixture::new();
    let cli = f.json(&["sessions", "list", "--limit", "200"]);
    let cli = cli.as_array().unwrap();
    assert_eq!(cli.len(), 5);
    let client = client(&f.home(), &f.ledger(), &[]).await;
    let got = structured(&client, "list_sessions", json!({"limit": 200})).await;
    assert_eq!(got["sessions"].as_array().unwrap(), cli);
    for row in cli {
        for field in ["persona_id", "status", "turns"] {
            assert!(!row[field].is_null(), "{field}: {row}");
        }
    }
    assert!(
        cli.iter()
            .all(|r| r["turns"].as_u64().is_some_and(|n| n >= 1)),
        "every session has its turns counted: {cli:?}"
    );
    client.cancel().await.unwrap();
}

/// A parent whose 30 subagents were spawned by calls it does not hold (so they are listed
/// apart, in `other_subagents`), each with a 2,000-character prompt, in a 700-character
/// workspace.
fn parent_with_subagents_apart() -> Vec<Value> {
    let t0 = 1_760_000_000_000_i64;
    let workspace = format!("/work/{}", "deep".repeat(175));
    let item = |id: &str, session: Value, prompt: String| {
        json!({"sourceProvider": "claude-code", "sourceSessionId": id,
               "sourceSessionFingerprint": format!("fp-{id}"), "session": session,
               "turns": [{"sourceTurnId": "t1", "startedAtMs": t0, "completedAtMs": t0 + 500}],
               "messages": [{"sourceMessageId": "m1", "sourceTurnId": "t1", "role": "user",
                             "content": prompt, "sequence": 0, "createdAtMs": t0}]})
    };
    let mut items = vec![item(
        "parent",
        json!({"createdAtMs": t0, "workspacePath": workspace}),
        "spawn the helpers".into(),
    )];
    for i in 0..30 {
        items.push(item(
            &format!("sub-{i:02}"),
            json!({"createdAtMs": t0 + i, "workspacePath": workspace, "isSubagent": true,
                   "parentSourceSessionId": "parent", "spawnToolCallId": format!("gone-{i}")}),
            format!("helper {i} {}", "work ".repeat(400)),
        ));
    }
    items
}

#[tokio::test]
async fn get_session_cuts_a_header_over_half_the_byte_cap_with_markers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.db");
    let mut conn = ledger::open_agents(&path).unwrap();
    run_import(
        &mut conn,
        import_req("k1", "backfill", parent_with_subagents_apart()),
    )
    .unwrap();
    let label = sessions::resolve_label(&conn, "parent").unwrap();
    let doc = nex::query::export::export_session(
        &conn,
        &label,
        &nex::query::export::ExportOptions::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(doc.other_subagents.len(), 30);
    assert!(serde_json::to_string(&doc).unwrap().len() > 60_000);

    let client = client(dir.path(), &path, &["--max-result-bytes", "8000"]).await;
    let got = structured(&client, "get_session", json!({"label": "parent"})).await;
    assert!(got.to_string().len() <= 8_000, "{}", got.to_string().len());
    let mut header = got.clone();
    let header_map = header.as_object_mut().unwrap();
    let turns = header_map.remove("turns").unwrap();
    header_map.remove("next_cursor");
    assert!(header.to_string().len() <= 4_000, "{header}");
    assert_eq!(
        turns,
        serde_json::to_value(&doc.turns).unwrap(),
        "turns whole"
    );
    // Long strings cut with export's marker.
    let project = header["project"].as_str().unwrap();
    assert!(project.starts_with(&doc.project.as_deref().unwrap()[..200]));
    assert!(
        project.ends_with("[…cut: 506 more characters]"),
        "{project}"
    );
    // The subagents listed apart: without their turns, the rest counted.
    let kept = header["other_subagents"].as_array().unwrap();
    let cut = header["other_subagents_cut"].as_u64().unwrap() as usize;
    assert!(!kept.is_empty() && cut > 0);
    assert_eq!(kept.len() + cut, 30);
    for sub in kept {
        assert_eq!(sub["turns"], json!([]));
        assert_eq!(sub["turns_cut"], 1);
    }
    // Each one's turns: get_session with its label.
    let first = kept[0]["label"].as_str().unwrap();
    let sub = structured(&client, "get_session", json!({"label": first})).await;
    let prompt = sub["turns"][0]["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.starts_with("helper ") && prompt.len() > 2_000,
        "{prompt}"
    );
    client.cancel().await.unwrap();
}
