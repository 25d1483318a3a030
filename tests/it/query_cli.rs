//! `nex usage` and `nex sessions list|show|export` through the built binary, on a ledger built
//! by `nex import apply` from our fixture sessions (`tests/fixtures/query/`): usage sums equal
//! independent SQL sums of the rows, a subagent's tokens counted once, cost with known,
//! overridden and unknown prices, label prefixes and ambiguity, exports with nested
//! subagents with and without `--redact`; and usage on a ledger that `aix` backfilled from
//! the Claude Code and Codex fixture trees.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const ITEMS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/query/ledger-items.jsonl"
);
/// The fixture's `HOME`, as `make_ledger_items.py` writes it into the sessions.
const HOME: &str = "/home/tester";
/// The secrets `make_ledger_items.py` seeds.
const SECRETS: [&str; 5] = [
    "sk-ant-api03-SEEDEDsecret0123456789abcdef",
    "AKIAQUERYTESTSEED123",
    "hunter2secretpw",
    "abcdefghijklmnop123456",
    "ghp_SeededGithubToken0123456789ab",
];
const A: &str = "aaaa1111-0000-4000-8000-00000000000a";
const B: &str = "aaaa1111-0000-4000-8000-00000000000b";
const C: &str = "aaaa2222-0000-4000-8000-00000000000c";
const D: &str = "dddd3333-0000-4000-8000-00000000000d";
const E: &str = "eeee4444-0000-4000-8000-00000000000e";

/// A temp `NEX_HOME` with the fixture ledger.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    ledger: PathBuf,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let f = Fixture::empty();
        let out = f
            .cmd()
            .args(["import", "apply", "--ledger"])
            .arg(f.ledger())
            .arg(ITEMS)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        for line in text(&out.stdout).lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["ok"], true, "{line}");
        }
        f
    }

    /// No ledger yet, a home without config.
    fn empty() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let ledger = dir.path().join("agents.db");
        Fixture { dir, ledger }
    }

    pub(crate) fn ledger(&self) -> PathBuf {
        self.ledger.clone()
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `nex`, in UTC (day keys), with the fixture's `HOME` (redaction of the home path).
    fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nex"));
        cmd.env_remove("NEX_LEDGER")
            .env_remove("NEX_HOME")
            .env_remove("RUST_LOG")
            .env("TZ", "UTC")
            .env("HOME", HOME);
        cmd
    }

    /// `nex <args> --ledger L --home H`.
    fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .arg("--ledger")
            .arg(self.ledger())
            .arg("--home")
            .arg(self.home())
            .output()
            .unwrap()
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.run(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs `args`, expects exit 1 with `[code]` on stderr; returns stderr.
    fn fails(&self, args: &[&str], code: &str) -> String {
        let out = self.run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&format!("[{code}]")), "{args:?}: {err}");
        err
    }

    fn label(&self, source_session_id: &str) -> String {
        let conn = rusqlite::Connection::open(self.ledger()).unwrap();
        conn.query_row(
            "SELECT session_label FROM session_imports WHERE source_session_id = ?1",
            [source_session_id],
            |r| r.get(0),
        )
        .unwrap()
    }

    pub(crate) fn config(&self, toml: &str) {
        std::fs::write(self.home().join("config.toml"), toml).unwrap();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn rows(report: &Value) -> &Vec<Value> {
    report["rows"].as_array().unwrap()
}

fn row<'a>(report: &'a Value, key: &str) -> &'a Value {
    rows(report)
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row {key} in {report}"))
}

fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a cost: {v}"));
    assert!((got - want).abs() < 1e-9, "{got} != {want}");
}

const TOKEN_FIELDS: [&str; 7] = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "turns",
];

/// The same sums, computed from the rows by SQL of our own (no code shared with the query).
fn sql_sums(ledger: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.query_row(
        "SELECT TOTAL(input_tokens), TOTAL(output_tokens), TOTAL(cached_input_tokens),
            TOTAL(cache_write_tokens), TOTAL(reasoning_tokens),
            TOTAL(CASE WHEN total_tokens IS NOT NULL THEN total_tokens
                ELSE IFNULL(input_tokens, 0) + IFNULL(output_tokens, 0)
                   + IFNULL(cached_input_tokens, 0) + IFNULL(cache_write_tokens, 0) END),
            COUNT(*)
         FROM turns WHERE IFNULL(source_event_id, '') <> '__root__'",
        [],
        |r| (0..7).map(|i| Ok(r.get::<_, f64>(i)? as i64)).collect(),
    )
    .unwrap()
}

fn column_sums(report: &Value) -> Vec<i64> {
    TOKEN_FIELDS
        .iter()
        .map(|f| rows(report).iter().map(|r| r[*f].as_i64().unwrap()).sum())
        .collect()
}

#[test]
fn usage_sums_equal_sql_sums_of_the_rows_for_every_grouping() {
    let f = Fixture::new();
    let want = sql_sums(&f.ledger());
    // The fixture's own figures (make_ledger_items.py), so the SQL above is checked too.
    assert_eq!(want, vec![6510, 1255, 13000, 300, 250, 21115, 6]);
    for by in [
        "day", "week", "month", "project", "model", "provider", "session",
    ] {
        let report = f.json(&["usage", "--by", by]);
        assert_eq!(column_sums(&report), want, "--by {by}: {report}");
    }
    // Sessions are root sessions: B and C count in A.
    let by_day = f.json(&["usage", "--by", "day"]);
    let keys: Vec<&str> = rows(&by_day)
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["2026-03-01", "2026-03-02", "2026-03-03"]);
    let sessions: Vec<i64> = rows(&by_day)
        .iter()
        .map(|r| r["sessions"].as_i64().unwrap())
        .collect();
    assert_eq!(sessions, [2, 1, 1]);
    let week = f.json(&["usage", "--by", "week"]);
    // 2026-03-01 is a Sunday: its week began on Monday 02-23; 03-02 and 03-03 are the next.
    let keys: Vec<&str> = rows(&week)
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["2026-02-23", "2026-03-02"]);
    let month = f.json(&["usage", "--by", "month"]);
    assert_eq!(rows(&month).len(), 1);
    assert_eq!(row(&month, "2026-03")["sessions"], 3);
    // The table's TOTAL line counts each root session once, not once per day.
    let table = text(&f.run(&["usage"]).stdout);
    let total: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        total,
        [
            "TOTAL", "3", "6", "6510", "1255", "13000", "300", "250", "21115", "-"
        ]
    );
    let by_provider = f.json(&["usage", "--by", "provider"]);
    assert_eq!(row(&by_provider, "claude-code")["total_tokens"], 10065);
    assert_eq!(row(&by_provider, "codex")["total_tokens"], 10500);
    assert_eq!(row(&by_provider, "gemini-cli")["total_tokens"], 550);
    let by_project = f.json(&["usage", "--by", "project"]);
    assert_eq!(row(&by_project, "/work/alpha")["turns"], 4);
    assert_eq!(row(&by_project, "/work/beta")["turns"], 1);
    // The exact JSON shape of the contract.
    let fields: Vec<&str> = rows(&by_day)[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want_fields = vec![
        "key",
        "sessions",
        "turns",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "total_tokens",
        "cost_usd",
        "turns_without_tokens",
    ];
    want_fields.sort();
    let mut fields = fields;
    fields.sort();
    assert_eq!(fields, want_fields);
    assert_eq!(
        by_day.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["rows", "unpriced_models"]
    );
}

#[test]
fn a_subagents_tokens_count_once_in_its_row_and_once_in_its_parents_rollup() {
    let f = Fixture::new();
    let (a, b, c) = (f.label(A), f.label(B), f.label(C));
    let by_session = f.json(&["usage", "--by", "session"]);
    // Subagents have no row of their own in a report: they are in A's.
    assert_eq!(rows(&by_session).len(), 3, "{by_session}");
    let a_row = row(&by_session, &a);
    assert_eq!(a_row["total_tokens"], 8900 + 1150 + 15);
    assert_eq!(a_row["turns"], 4);
    assert_eq!(a_row["sessions"], 1);

    let tree = f.json(&["usage", "--session", &a]);
    let root = &tree["tree"];
    assert_eq!(root["label"], a.as_str());
    assert_eq!(root["spawned_by"], Value::Null);
    assert_eq!(root["own"]["total_tokens"], 8900);
    assert_eq!(root["subtree"]["total_tokens"], a_row["total_tokens"]);
    assert_eq!(root["subtree"]["sessions"], 3);
    let kids = root["children"].as_array().unwrap();
    assert_eq!(kids.len(), 1);
    let sub = &kids[0];
    assert_eq!(sub["label"], b.as_str());
    assert_eq!(sub["spawned_by"]["tool_name"], "Task");
    assert_eq!(sub["own"]["total_tokens"], 1150);
    assert_eq!(sub["subtree"]["total_tokens"], 1165);
    let subsub = &sub["children"][0];
    assert_eq!(subsub["label"], c.as_str());
    assert_eq!(subsub["own"]["total_tokens"], 15);
    assert_eq!(subsub["children"], Value::Array(vec![]));
    // Own usage over the tree sums to the root's subtree, field by field.
    for field in TOKEN_FIELDS {
        let own: i64 = [root, sub, subsub]
            .iter()
            .map(|n| n["own"][field].as_i64().unwrap())
            .sum();
        assert_eq!(Value::from(own), root["subtree"][field], "{field}");
    }
    // The spawning calls are the parents' rows.
    let conn = rusqlite::Connection::open(f.ledger()).unwrap();
    let spawn_b: String = conn
        .query_row(
            "SELECT spawn_tool_call_id FROM sessions WHERE label = ?1",
            [&b],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sub["spawned_by"]["tool_call_id"], spawn_b.as_str());
    let table = text(&f.run(&["usage", "--session", &a]).stdout);
    assert!(
        table.contains(&format!("└ Task {spawn_b} -> {b}")),
        "{table}"
    );
}

#[test]
fn cost_is_priced_per_model_unknown_never_zero_and_overridden_by_config() {
    let f = Fixture::new();
    let (a, b) = (f.label(A), f.label(B));
    let report = f.json(&["usage", "--by", "session"]);
    assert_eq!(
        report["unpriced_models"],
        serde_json::json!(["mystery-model-x"])
    );
    // A's tree holds C's unpriced turn: unknown, not a partial sum.
    assert_eq!(row(&report, &a)["cost_usd"], Value::Null);
    // gpt-5-codex: 3000 x 1.25 + 500 x 10 + 7000 x 0.125 (reasoning is inside the output).
    close(&row(&report, &f.label(D))["cost_usd"], 0.009625);
    // gemini-2.5-pro: 400 x 1.25 + (100 + 50 reasoning apart) x 10.
    close(&row(&report, &f.label(E))["cost_usd"], 0.002);
    let by_model = f.json(&["usage", "--by", "model"]);
    // Sonnet 4.5: 3000 + 3000 + 1500 + 1125, then 6000 + 6000 (per million).
    close(
        &row(&by_model, "claude-sonnet-4-5-20250929")["cost_usd"],
        0.020625,
    );
    close(
        &row(&by_model, "claude-haiku-4-5-20251001")["cost_usd"],
        0.00045,
    );
    assert_eq!(row(&by_model, "mystery-model-x")["cost_usd"], Value::Null);
    let table = text(&f.run(&["usage", "--by", "model"]).stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("mystery-model-x"))
        .unwrap();
    assert!(line.trim_end().ends_with(" -"), "{line}");
    assert!(table.contains("no price for: mystery-model-x"), "{table}");
    let tree = f.json(&["usage", "--session", &b]);
    close(&tree["tree"]["own"]["cost_usd"], 0.00045);
    assert_eq!(tree["tree"]["subtree"]["cost_usd"], Value::Null);

    // config.toml prices the unknown model and overrides a known one.
    f.config(
        "[prices.\"mystery-model-x\"]\ninput = 1\noutput = 2\n\
         [prices.\"claude-sonnet-4-5\"]\ninput = 0\noutput = 0\ncache_read = 0\ncache_write = 0\n",
    );
    let report = f.json(&["usage", "--by", "session"]);
    assert_eq!(report["unpriced_models"], serde_json::json!([]));
    // Sonnet now free: B (haiku) 0.00045 + C 10 x 1 + 5 x 2.
    close(&row(&report, &a)["cost_usd"], 0.00045 + 0.00002);
    // A bad price is refused with the config's code.
    f.config("[prices.\"m\"]\ninput = -1\noutput = 1\n");
    f.fails(&["usage"], "config_invalid");
}

#[test]
fn usage_filters_by_provider_project_and_local_days() {
    let f = Fixture::new();
    let codex = f.json(&["usage", "--provider", "codex"]);
    assert_eq!(rows(&codex).len(), 1);
    assert_eq!(row(&codex, "2026-03-01")["total_tokens"], 10500);
    assert_eq!(codex["unpriced_models"], serde_json::json!([]));
    let alpha = f.json(&["usage", "--project", "/work/alpha", "--by", "project"]);
    let keys: Vec<&str> = rows(&alpha)
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["/work/alpha", "/work/alpha/sub"]);
    let day = f.json(&["usage", "--since", "2026-03-02", "--until", "2026-03-02"]);
    assert_eq!(rows(&day).len(), 1);
    assert_eq!(row(&day, "2026-03-02")["total_tokens"], 2400);
    assert_eq!(row(&day, "2026-03-02")["sessions"], 1);
    let since = f.json(&["usage", "--since", "2026-03-02", "--by", "provider"]);
    assert_eq!(rows(&since).len(), 2);
    // Days are local: 11 hours west of UTC (POSIX `UTC+11`), A's first turn (03-01 10:00
    // UTC) falls on 02-28.
    let out = f
        .cmd()
        .env("TZ", "UTC+11")
        .args(["usage", "--json", "--ledger"])
        .arg(f.ledger())
        .arg("--home")
        .arg(f.home())
        .output()
        .unwrap();
    let west: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows(&west)[0]["key"], "2026-02-28");
    for bad in ["2026-02-30", "03/01/2026", "yesterday"] {
        let err = f.fails(&["usage", "--since", bad], "date_invalid");
        assert!(err.contains("YYYY-MM-DD"), "{err}");
    }
}

#[test]
fn labels_resolve_from_prefixes_and_tool_session_ids_and_ambiguity_lists_candidates() {
    let f = Fixture::new();
    let (a, b, d) = (f.label(A), f.label(B), f.label(D));
    for input in [
        a.as_str(),
        A,
        &a[..a.len() - 3],
        "dddd",
        D,
        "import:codex",
        "eeee4444",
    ] {
        let show = f.json(&["sessions", "show", input]);
        let want = match input {
            i if i.starts_with("dddd") || i == "import:codex" => d.clone(),
            i if i.starts_with("eeee") => f.label(E),
            _ => a.clone(),
        };
        assert_eq!(show["label"], want.as_str(), "{input}");
    }
    let err = f.fails(&["sessions", "show", "aaaa1111"], "session_ambiguous");
    assert!(err.contains(&a) && err.contains(&b), "{err}");
    assert!(err.contains("matches 2 sessions"), "{err}");
    let err = f.fails(
        &["sessions", "show", "import:claude-code"],
        "session_ambiguous",
    );
    assert!(err.contains("matches 3 sessions"), "{err}");
    let err = f.fails(&["sessions", "show", "zzzz"], "session_not_found");
    assert!(err.contains("zzzz"), "{err}");
    // Every command that takes a label resolves the same way.
    f.fails(&["sessions", "export", "aaaa"], "session_ambiguous");
    f.fails(&["usage", "--session", "nope"], "session_not_found");
    let tree = f.json(&["usage", "--session", "aaaa2222"]);
    assert_eq!(tree["tree"]["label"], f.label(C).as_str());
}

#[test]
fn sessions_list_shows_project_title_model_tokens_duration_and_filters() {
    let f = Fixture::new();
    let list = f.json(&["sessions", "list"]);
    let all = list.as_array().unwrap();
    assert_eq!(all.len(), 5);
    let a = all.iter().find(|s| s["source_session_id"] == A).unwrap();
    assert_eq!(a["project"], "/work/alpha");
    assert_eq!(a["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(a["total_tokens"], 8900);
    // From a1's start to a2's end.
    assert_eq!(a["duration_ms"], 86_400_000 + 60_000);
    let title = a["title"].as_str().unwrap();
    assert!(
        title.starts_with("Deploy the alpha service with key"),
        "{title}"
    );
    assert_eq!(title.chars().count(), 80);
    assert!(title.ends_with('…'));
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["source_session_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&f.json(&["sessions", "list", "--provider", "gemini-cli"])),
        [E]
    );
    // Most recently updated first.
    assert_eq!(
        ids(&f.json(&["sessions", "list", "--project", "/work/alpha"])),
        [E, A, C, B]
    );
    assert_eq!(
        ids(&f.json(&["sessions", "list", "--since", "2026-03-02"])),
        [E, A]
    );
    assert_eq!(ids(&f.json(&["sessions", "list", "--limit", "2"])), [E, A]);
    let table = text(&f.run(&["sessions", "list"]).stdout);
    let header = table.lines().next().unwrap();
    for col in ["PROJECT", "TITLE", "MODEL", "TOKENS", "DURATION"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains("1d00h"), "{table}");
}

#[test]
fn export_nests_subagents_under_their_calls_and_redact_removes_every_seeded_secret() {
    let f = Fixture::new();
    let (a, b, c) = (f.label(A), f.label(B), f.label(C));
    let out = f.run(&["sessions", "export", A, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plain = text(&out.stdout);
    let doc: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(doc["label"], a.as_str());
    assert_eq!(doc["turns"].as_array().unwrap().len(), 2);
    let task = &doc["turns"][0]["tool_calls"][0];
    assert_eq!(task["tool_name"], "Task");
    assert_eq!(task["subagents"][0]["label"], b.as_str());
    let nested = &task["subagents"][0]["turns"][0]["tool_calls"][0];
    assert_eq!(nested["subagents"][0]["label"], c.as_str());
    assert_eq!(
        nested["subagents"][0]["turns"][0]["messages"][1]["content"],
        "There are 420 lines."
    );
    assert_eq!(doc["other_subagents"], Value::Array(vec![]));
    // The long result is cut with a marker.
    let result = task["result"].as_str().unwrap();
    assert!(result.contains(" […cut: "), "{result}");
    assert!(result.chars().count() < 4_100);
    // Without --redact the seeded secrets are there (the fixture seeds what we test).
    for s in SECRETS {
        assert!(plain.contains(s), "{s} not seeded");
    }
    assert!(plain.contains(HOME));
    let md = text(&f.run(&["sessions", "export", A]).stdout);
    assert!(md.starts_with("# Deploy the alpha service"), "{md}");
    // C is quoted twice: a subagent of a subagent.
    assert!(md.contains(&format!("> > - label: `{c}`")), "{md}");

    for format in ["json", "md"] {
        let out = f.run(&["sessions", "export", A, "--format", format, "--redact"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let red = text(&out.stdout);
        for s in SECRETS {
            assert!(!red.contains(s), "{format}: {s} survived --redact");
        }
        assert!(!red.contains(HOME), "{format}: home survived");
        assert!(red.contains("~/alpha"), "{format}");
        assert!(red.contains("[REDACTED:anthropic_key]"), "{format}");
        if format == "json" {
            let doc: Value = serde_json::from_str(&red).unwrap();
            assert_eq!(
                doc["turns"][0]["tool_calls"][0]["subagents"][0]["label"],
                b.as_str()
            );
        }
    }
    // -o writes the same document to a private file.
    let file = f.dir.path().join("export.md");
    let out = f.run(&[
        "sessions",
        "export",
        A,
        "--redact",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        written,
        text(&f.run(&["sessions", "export", A, "--redact"]).stdout)
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn usage_of_a_backfilled_fixture_tree_equals_sql_sums_and_counts_subagents_once() {
    use super::e2e_support::{Tree, assert_clean, backfill};
    let tree = Tree::with_fixtures();
    let ledger = tree.ledger("query.db");
    assert_clean(&backfill(&tree, &ledger));
    let f = Fixture {
        ledger,
        ..Fixture::empty()
    };
    let want = sql_sums(&f.ledger());
    assert!(want[6] > 0, "the fixtures hold turns");
    let by_session = f.json(&["usage", "--by", "session"]);
    let by_day = f.json(&["usage", "--by", "day"]);
    assert_eq!(column_sums(&by_session), want);
    assert_eq!(column_sums(&by_day), want);
    // Every session's tree adds up to its row; the trees cover every turn once.
    let mut tree_total = 0;
    for r in rows(&by_session) {
        let t = f.json(&["usage", "--session", r["key"].as_str().unwrap()]);
        assert_eq!(t["tree"]["subtree"]["total_tokens"], r["total_tokens"]);
        assert_eq!(t["tree"]["subtree"]["turns"], r["turns"]);
        tree_total += r["total_tokens"].as_i64().unwrap();
    }
    assert_eq!(tree_total, want[5]);
    let conn = rusqlite::Connection::open(f.ledger()).unwrap();
    let subagents: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE parent_session_label IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(subagents > 0, "the fixtures hold subagents");
    let sessions: i64 = conn
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert!((rows(&by_session).len() as i64) < sessions);
}

#[test]
fn usage_and_export_before_any_import_say_no_sessions_yet_and_create_nothing() {
    let f = Fixture::empty();
    for args in [
        &["usage"][..],
        &["usage", "--by", "model"],
        &["sessions", "export", "x"],
    ] {
        let out = f.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("no sessions yet: run `nex import backfill`"),
            "{args:?}"
        );
    }
    assert_eq!(
        f.json(&["usage"]),
        serde_json::json!({"rows": [], "unpriced_models": []})
    );
    assert_eq!(f.json(&["usage", "--session", "x"]), Value::Null);
    assert!(!f.ledger().exists(), "a read command created the ledger");
}

/// `--since` / `--until` read alike in `nex search`, `nex usage` and `nex sessions list`: a
/// calendar day of the local zone (`TZ`), or of UTC under `--utc`. Here 11 hours west of UTC
/// (POSIX `UTC+11`): A's first prompt (03-01 10:00 UTC) and B's and C's turns after it fall on
/// 02-28 local; A's last turn (03-02 10:00 UTC) on 03-01.
#[test]
fn since_and_until_are_the_same_local_days_in_every_command_and_utc_under_utc() {
    let f = Fixture::new();
    let run_in_west = |args: &[&str]| -> Vec<Value> {
        let out = f
            .cmd()
            .env("TZ", "UTC+11")
            .args(args)
            .args(["--json", "--ledger"])
            .arg(f.ledger())
            .arg("--home")
            .arg(f.home())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        match serde_json::from_str::<Value>(&stdout) {
            Ok(Value::Array(items)) => items,
            Ok(report) if report.get("rows").is_some() => rows(&report).clone(),
            Ok(one_hit) => vec![one_hit],
            // `nex search --json`: one line per hit.
            Err(_) => stdout
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        }
    };
    let day = |d: &'static str| ["--since", d, "--until", d];
    let turns = |rows: &[Value]| -> i64 { rows.iter().map(|r| r["turns"].as_i64().unwrap()).sum() };

    // Local days.
    let hits = run_in_west(&[&["search", "\"deploy the alpha\""][..], &day("2026-02-28")].concat());
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(
        run_in_west(&[&["search", "\"deploy the alpha\""][..], &day("2026-03-01")].concat())
            .is_empty()
    );
    let usage = run_in_west(&[&["usage", "--by", "provider"][..], &day("2026-02-28")].concat());
    assert_eq!(turns(&usage), 3, "{usage:?}");
    let listed = run_in_west(&["sessions", "list", "--since", "2026-03-02"]);
    let ids: Vec<&str> = listed
        .iter()
        .map(|s| s["source_session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [E]);

    // UTC days under --utc.
    assert!(
        run_in_west(
            &[
                &["search", "\"deploy the alpha\"", "--utc"][..],
                &day("2026-02-28")
            ]
            .concat()
        )
        .is_empty()
    );
    let hits = run_in_west(
        &[
            &["search", "\"deploy the alpha\"", "--utc"][..],
            &day("2026-03-01"),
        ]
        .concat(),
    );
    assert_eq!(hits.len(), 1);
    let usage = run_in_west(
        &[
            &["usage", "--by", "provider", "--utc"][..],
            &day("2026-02-28"),
        ]
        .concat(),
    );
    assert!(usage.is_empty(), "{usage:?}");
    let by_day =
        run_in_west(&[&["usage", "--by", "day", "--utc"][..], &day("2026-03-01")].concat());
    let keys: Vec<&str> = by_day.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["2026-03-01"], "UTC day keys under --utc");
    let listed = run_in_west(&["sessions", "list", "--since", "2026-03-02", "--utc"]);
    let ids: Vec<&str> = listed
        .iter()
        .map(|s| s["source_session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [E, A]);

    // A time with an offset is that instant in every command; a bad date is `date_invalid`
    // in every command.
    let hits = run_in_west(&[
        "search",
        "\"deploy the alpha\"",
        "--since",
        "2026-03-01T09:59:59Z",
    ]);
    assert_eq!(hits.len(), 1);
    for cmd in [
        &["search", "\"deploy the alpha\""][..],
        &["usage"],
        &["sessions", "list"],
    ] {
        let err = f.fails(&[cmd, &["--since", "2026-02-30"]].concat(), "date_invalid");
        assert!(err.contains("YYYY-MM-DD"), "{err}");
    }
}

/// `nex search` shows a hit's time as people read it: local time with its offset (`TZ`), UTC
/// under `--utc`; the JSON keeps RFC 3339 UTC. The hit is A's first prompt, 03-01 10:00 UTC.
#[test]
fn search_shows_local_times_with_their_offset_and_utc_under_utc() {
    let f = Fixture::new();
    let human = |extra: &[&str]| -> String {
        let out = f
            .cmd()
            .env("TZ", "UTC+11")
            .args(["search", "\"deploy the alpha\""])
            .args(extra)
            .arg("--ledger")
            .arg(f.ledger())
            .arg("--home")
            .arg(f.home())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let west = human(&[]);
    assert!(
        west.starts_with("2026-02-28 23:00:00 -11:00  "),
        "local time with its offset: {west}"
    );
    let utc = human(&["--utc"]);
    assert!(
        utc.starts_with("2026-03-01 10:00:00 +00:00  "),
        "UTC under --utc: {utc}"
    );
}
